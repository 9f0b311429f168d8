"""Pairwise comparison of configurations (the paper's supplementary tables).

Every function takes a mapping name -> one configuration's results on the same cases and returns
a dict keyed by (name_a, name_b) for every pair, in the mapping's order. FROC and ROC operating
points get the paper's criterion (non-overlapping 95% intervals) and a paired bootstrap p-value:
all configurations are resampled with the same case/cluster draws, so the difference is measured
on the same cases. ROC AUCs also get DeLong's paired test; boundary errors a paired Wilcoxon
signed-rank test per interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ftjax.metrics import _checks
from ftjax.metrics.boundary import BoundaryTable
from ftjax.metrics.froc import (
    LUNA16_FP_RATES,
    CaseHits,
    _case_events,
    _default_fp_grid,
    _mean_summary,
)
from ftjax.metrics.roc import (
    PAPER_FPRS,
    CurveBootstrap,
    DelongTest,
    _auc_summary,
    _bootstrap,
    _roc_events,
    _roc_inputs,
    delong_test,
)


@dataclass(frozen=True, eq=False)
class PairedComparison:
    """Configuration a versus b at each operating point, from shared bootstrap resamples.

    `diff` = a - b (full data) with its percentile interval and a two-sided paired bootstrap
    p-value per operating point; the `summary_*` fields do the same for the AUC / FROC score.
    """

    a: CurveBootstrap
    b: CurveBootstrap
    diff: np.ndarray
    diff_low: np.ndarray
    diff_high: np.ndarray
    p_value: np.ndarray
    summary_diff: float
    summary_diff_low: float
    summary_diff_high: float
    summary_p_value: float

    @property
    def intervals_overlap(self) -> np.ndarray:
        """Whether the two configurations' intervals overlap at each operating point."""
        return (self.a.low <= self.b.high) & (self.b.low <= self.a.high)

    @property
    def significant(self) -> np.ndarray:
        """The paper's criterion: the 95% intervals do not overlap."""
        return ~self.intervals_overlap


def bootstrap_p(diffs: np.ndarray) -> np.ndarray:
    """Two-sided p-value of "no difference" from paired bootstrap differences (axis 0).

    Twice the smaller tail fraction of resampled differences at or beyond zero, with the usual
    +1 correction so that a p-value is never exactly zero.
    """
    n = np.isfinite(diffs).sum(axis=0)
    below = (diffs <= 0).sum(axis=0)
    above = (diffs >= 0).sum(axis=0)
    return np.minimum(1.0, 2.0 * (np.minimum(below, above) + 1) / (n + 1))


def _paired(a: CurveBootstrap, b: CurveBootstrap) -> PairedComparison:
    diffs = a.samples - b.samples
    summary_diffs = a.summary_samples - b.summary_samples
    low, high = _checks.percentile_interval(diffs, a.level)
    s_low, s_high = _checks.percentile_interval(summary_diffs, a.level)
    return PairedComparison(
        a=a,
        b=b,
        diff=a.estimate - b.estimate,
        diff_low=low,
        diff_high=high,
        p_value=bootstrap_p(diffs),
        summary_diff=a.summary - b.summary,
        summary_diff_low=float(s_low),
        summary_diff_high=float(s_high),
        summary_p_value=float(bootstrap_p(summary_diffs)),
    )


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not tests: they stay
    NaN and do not count towards the family's size)."""
    p = np.asarray(p_values, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else p[order]
    out[order] = np.minimum(1.0, adjusted)
    return out


def _names(configs: Mapping) -> list[str]:
    if len(configs) < 2:
        raise ValueError(f"need at least two configurations to compare, got {len(configs)}")
    return list(configs)


def froc_bootstraps(
    configs: Mapping[str, Sequence[CaseHits]],
    fp_rates: ArrayLike = LUNA16_FP_RATES,
    clusters: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    fp_grid: ArrayLike | None = None,
) -> dict[str, CurveBootstrap]:
    """Every configuration's FROC bootstrap on the same resamples of the same cases (so that
    differences, and differences of differences, can be read off the paired samples)."""
    if not configs:
        raise ValueError("no configurations to bootstrap")
    names = list(configs)
    events = [_case_events(configs[name]) for name in names]
    reference = events[0].unit_pos
    for name, ev in zip(names, events, strict=True):
        if ev.unit_pos.shape != reference.shape or not np.array_equal(ev.unit_pos, reference):
            raise ValueError(
                f"configuration {name!r} is not on the same cases as {names[0]!r} "
                "(number of cases or lesions per case differ)"
            )
    points = _checks.rates(fp_rates, "fp_rates")
    if fp_grid is None:
        grid = _default_fp_grid(events, points)
    else:
        grid = _checks.rates(fp_grid, "fp_grid")
    boots = _bootstrap(events, clusters, points, grid, _mean_summary, n_boot, seed, level)
    return dict(zip(names, boots, strict=True))


def compare_froc(
    configs: Mapping[str, Sequence[CaseHits]],
    fp_rates: ArrayLike = LUNA16_FP_RATES,
    clusters: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    fp_grid: ArrayLike | None = None,
) -> dict[tuple[str, str], PairedComparison]:
    """Compare FROCs of configurations scored on the same cases (same order, same lesions)."""
    names = _names(configs)
    by_name = froc_bootstraps(configs, fp_rates, clusters, n_boot, seed, level, fp_grid)
    return {(a, b): _paired(by_name[a], by_name[b]) for a, b in combinations(names, 2)}


@dataclass(frozen=True, eq=False)
class RocComparison:
    """DeLong's paired AUC test and the bootstrap comparison at the operating points."""

    delong: DelongTest
    bootstrap: PairedComparison


def roc_bootstraps(
    labels: ArrayLike,
    configs: Mapping[str, ArrayLike],
    fprs: ArrayLike = PAPER_FPRS,
    clusters: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, CurveBootstrap]:
    """Every configuration's ROC bootstrap on the same resamples of the same labelled samples."""
    if not configs:
        raise ValueError("no configurations to bootstrap")
    names = list(configs)
    scored = [_roc_inputs(labels, configs[name]) for name in names]
    points = _checks.rates(fprs, "fprs", upper=1.0)
    grid = np.linspace(0.0, 1.0, 101)
    events = [_roc_events(y, s) for y, s in scored]
    boots = _bootstrap(events, clusters, points, grid, _auc_summary, n_boot, seed, level)
    return dict(zip(names, boots, strict=True))


def compare_roc(
    labels: ArrayLike,
    configs: Mapping[str, ArrayLike],
    fprs: ArrayLike = PAPER_FPRS,
    clusters: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[tuple[str, str], RocComparison]:
    """Compare ROC curves of configurations that scored the same labelled samples."""
    names = _names(configs)
    by_name = roc_bootstraps(labels, configs, fprs, clusters, n_boot, seed, level)
    return {
        (a, b): RocComparison(
            delong=delong_test(labels, configs[a], configs[b]),
            bootstrap=_paired(by_name[a], by_name[b]),
        )
        for a, b in combinations(names, 2)
    }


@dataclass(frozen=True)
class WilcoxonTest:
    """Paired Wilcoxon signed-rank test of a - b over images."""

    n: int
    median_diff: float
    statistic: float
    p_value: float


def _wilcoxon(a: np.ndarray, b: np.ndarray) -> WilcoxonTest:
    d = a - b
    if not np.any(d):
        return WilcoxonTest(d.size, 0.0, 0.0, 1.0)
    result = stats.wilcoxon(a, b)
    return WilcoxonTest(d.size, float(np.median(d)), float(result.statistic), float(result.pvalue))


#: Per-image error fields compared by `compare_boundary` (absolute errors, as in the box plots).
BOUNDARY_FIELDS: tuple[str, ...] = ("li_um", "ma_um", "imt_abs_um")


def compare_boundary(
    configs: Mapping[str, BoundaryTable],
) -> dict[tuple[str, str], dict[str, WilcoxonTest]]:
    """Paired Wilcoxon tests of per-image LI, MA and IMT errors (same images, same order)."""
    names = _names(configs)
    sizes = {name: configs[name].li_um.size for name in names}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"configurations must cover the same images; image counts {sizes}")
    return {
        (a, b): {
            f: _wilcoxon(getattr(configs[a], f), getattr(configs[b], f)) for f in BOUNDARY_FIELDS
        }
        for a, b in combinations(names, 2)
    }
