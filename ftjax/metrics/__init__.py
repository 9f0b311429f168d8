"""Evaluation metrics of the paper: FROC, ROC/AUC, boundary error, intervals, tests, figures.

Pure numpy/scipy. Figures live in `ftjax.metrics.plots` (imported on demand: it loads matplotlib).
"""

from ftjax.metrics.boundary import BoundaryErrors, BoundaryTable, boundary_errors
from ftjax.metrics.compare import (
    BOUNDARY_FIELDS,
    PairedComparison,
    RocComparison,
    WilcoxonTest,
    compare_boundary,
    compare_froc,
    compare_roc,
)
from ftjax.metrics.froc import (
    LUNA16_FP_RATES,
    CaseHits,
    FrocCurve,
    assign_hits,
    assign_hits_to_centres,
    estimable,
    froc_bootstrap,
    froc_curve,
    froc_from_cases,
    froc_score,
    sensitivity_at,
)
from ftjax.metrics.roc import (
    PAPER_FPRS,
    AucInterval,
    CurveBootstrap,
    DelongTest,
    RocCurve,
    delong_interval,
    delong_test,
    delong_variance,
    roc_auc,
    roc_bootstrap,
    roc_curve,
    sensitivity_at_fpr,
)

__all__ = [
    "BOUNDARY_FIELDS",
    "LUNA16_FP_RATES",
    "PAPER_FPRS",
    "AucInterval",
    "BoundaryErrors",
    "BoundaryTable",
    "CaseHits",
    "CurveBootstrap",
    "DelongTest",
    "FrocCurve",
    "PairedComparison",
    "RocComparison",
    "RocCurve",
    "WilcoxonTest",
    "assign_hits",
    "assign_hits_to_centres",
    "estimable",
    "boundary_errors",
    "compare_boundary",
    "compare_froc",
    "compare_roc",
    "delong_interval",
    "delong_test",
    "delong_variance",
    "froc_bootstrap",
    "froc_curve",
    "froc_from_cases",
    "froc_score",
    "roc_auc",
    "roc_bootstrap",
    "roc_curve",
    "sensitivity_at",
    "sensitivity_at_fpr",
]
