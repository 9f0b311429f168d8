"""ROC curves, AUC, DeLong intervals and tests, and the cluster bootstrap shared with the FROC.

An ROC and a FROC are the same computation: sort scored events by decreasing score, sweep the
threshold over the distinct scores, and accumulate positives (y) and negatives (x), each divided
by a denominator. ROC divides by the numbers of positive and negative samples; FROC divides hits
by the number of lesions and false positives by the number of cases. This module holds that
engine (`_Events`, `_curves`, `_interp`) and the bootstrap built on it; `froc.py` reuses both.
Ties at one threshold move the curve diagonally, which makes the trapezoidal AUC equal to the
Mann-Whitney statistic with ties counted one half (scikit-learn's convention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ftjax.metrics import _checks

#: False-positive rates at which the paper compares ROC curves (frame classification).
PAPER_FPRS: tuple[float, ...] = (0.10, 0.15, 0.20)

# Upper bound on resamples x events held in memory at once by the bootstrap.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True, eq=False)
class _Events:
    """Scored events grouped by distinct score, ready for curves under any weighting of units.

    `pos_unit` / `neg_unit`: the unit (case, or cluster after `_coarsen`) of each positive /
    negative event, in decreasing score order; `pos_count[g]` / `neg_count[g]`: how many of them
    score at least `thresholds[g]`; `unit_pos` / `unit_neg`: each unit's share of the y and x
    denominators.
    """

    thresholds: np.ndarray
    pos_unit: np.ndarray
    neg_unit: np.ndarray
    pos_count: np.ndarray
    neg_count: np.ndarray
    unit_pos: np.ndarray
    unit_neg: np.ndarray


def _events(
    scores: np.ndarray,
    positive: np.ndarray,
    unit: np.ndarray,
    unit_pos: ArrayLike,
    unit_neg: ArrayLike,
) -> _Events:
    thresholds = np.unique(scores)[::-1]

    def side(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-scores[mask], kind="stable")
        at_least = np.searchsorted(-scores[mask][order], -thresholds, side="right")
        return unit[mask][order], at_least

    pos_unit, pos_count = side(positive)
    neg_unit, neg_count = side(~positive)
    return _Events(
        thresholds=thresholds,
        pos_unit=pos_unit,
        neg_unit=neg_unit,
        pos_count=pos_count,
        neg_count=neg_count,
        unit_pos=np.asarray(unit_pos, dtype=float),
        unit_neg=np.asarray(unit_neg, dtype=float),
    )


def _coarsen(ev: _Events, codes: np.ndarray) -> _Events:
    """The same events with units merged into clusters (`codes[unit]` is a unit's cluster)."""
    k = int(codes.max()) + 1
    return replace(
        ev,
        pos_unit=codes[ev.pos_unit],
        neg_unit=codes[ev.neg_unit],
        unit_pos=np.bincount(codes, ev.unit_pos, minlength=k),
        unit_neg=np.bincount(codes, ev.unit_neg, minlength=k),
    )


def _cumulative(weights: np.ndarray, units: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted number of events at each threshold, with the +inf anchor (0) in column 0."""
    total = np.zeros((weights.shape[0], units.size + 1))
    np.cumsum(weights[:, units], axis=1, out=total[:, 1:])
    return total[:, np.r_[0, counts]]


def _curves(ev: _Events, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x and y of shape (rows, distinct scores + 1), one row per weighting of the units.

    Column 0 is the anchor (0, 0) at threshold +inf; column g+1 counts every event scoring at
    least `ev.thresholds[g]`. Rows whose denominators are zero are NaN.
    """
    if weights is None:
        weights = np.ones((1, ev.unit_pos.size))
    y_total = weights @ ev.unit_pos
    x_total = weights @ ev.unit_neg
    valid = (y_total > 0) & (x_total > 0)
    y_total = np.where(valid, y_total, np.nan)[:, None]
    x_total = np.where(valid, x_total, np.nan)[:, None]
    x = _cumulative(weights, ev.neg_unit, ev.neg_count) / x_total
    y = _cumulative(weights, ev.pos_unit, ev.pos_count) / y_total
    return x, y


def _interp(x: np.ndarray, y: np.ndarray, query: np.ndarray) -> np.ndarray:
    """y at `query` on each row's piecewise-linear curve (rows of x non-decreasing from 0).

    Where x repeats (a vertical step) the top of the step is taken; between steps the line joins
    the top of one to the bottom of the next; beyond the last point y stays at its last value.
    This is what `np.interp` does on LUNA16's and MONAI's FROC arrays.
    """
    out = np.full((x.shape[0], query.size), np.nan)
    last = x.shape[1] - 1
    for row in np.flatnonzero(np.isfinite(x[:, -1])):
        xr, yr = x[row], y[row]
        k = np.searchsorted(xr, query, side="right") - 1
        k_next = np.minimum(k + 1, last)
        dx = xr[k_next] - xr[k]
        frac = np.divide(query - xr[k], dx, out=np.zeros_like(query), where=dx > 0)
        out[row] = yr[k] + frac * (yr[k_next] - yr[k])
    return out


@dataclass(frozen=True, eq=False)
class CurveBootstrap:
    """Bootstrap confidence for a ROC or FROC curve.

    `points` are the operating points (false-positive rates, or FPs per case for a FROC) with the
    full-data `estimate` of sensitivity and its percentile interval [`low`, `high`]; `grid`
    carries the pointwise band [`band_low`, `band_high`] for plotting; `summary` is the AUC (ROC)
    or the FROC score (mean sensitivity over `points`). `samples` and `summary_samples` keep every
    resample (NaN rows are resamples with no positives or no negatives), for paired tests.
    """

    points: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    grid: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    summary: float
    summary_low: float
    summary_high: float
    samples: np.ndarray
    summary_samples: np.ndarray
    level: float
    n_boot: int
    n_valid: int
    seed: int


_Summary = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _auc_summary(x: np.ndarray, y: np.ndarray, _at_points: np.ndarray) -> np.ndarray:
    return np.trapezoid(y, x, axis=1)


def _bootstrap(
    events: Sequence[_Events],
    clusters: Sequence | np.ndarray | None,
    points: np.ndarray,
    grid: np.ndarray,
    summary: _Summary,
    n_boot: int,
    seed: int,
    level: float,
) -> list[CurveBootstrap]:
    """Bootstrap every configuration in `events` on the same resamples of their shared units."""
    n_boot = _checks.positive_int(n_boot, "n_boot")
    level = _checks.probability_level(level)
    codes = _checks.cluster_codes(clusters, events[0].unit_pos.size)
    n_clusters = int(codes.max()) + 1
    coarse = [_coarsen(ev, codes) for ev in events]
    largest = max(max(ev.pos_unit.size + ev.neg_unit.size for ev in events), n_clusters)
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // largest))
    at_points = [np.empty((n_boot, points.size)) for _ in events]
    at_grid = [np.empty((n_boot, grid.size)) for _ in events]
    summaries = [np.empty(n_boot) for _ in events]
    rng = np.random.default_rng(seed)
    start = 0
    for counts in _checks.bootstrap_counts(n_clusters, n_boot, rng, chunk):
        stop = start + counts.shape[0]
        for i, ev in enumerate(coarse):
            x, y = _curves(ev, counts)
            at_points[i][start:stop] = _interp(x, y, points)
            at_grid[i][start:stop] = _interp(x, y, grid)
            summaries[i][start:stop] = summary(x, y, at_points[i][start:stop])
        start = stop
    n_valid = int(np.isfinite(summaries[0]).sum())
    if n_valid == 0:
        raise ValueError("no bootstrap resample contained both positives and negatives")
    results = []
    for i, ev in enumerate(events):
        x, y = _curves(ev)
        estimate = _interp(x, y, points)
        low, high = _checks.percentile_interval(at_points[i], level)
        band_low, band_high = _checks.percentile_interval(at_grid[i], level)
        s_low, s_high = _checks.percentile_interval(summaries[i], level)
        results.append(
            CurveBootstrap(
                points=points,
                estimate=estimate[0],
                low=low,
                high=high,
                grid=grid,
                band_low=band_low,
                band_high=band_high,
                summary=float(summary(x, y, estimate)[0]),
                summary_low=float(s_low),
                summary_high=float(s_high),
                samples=at_points[i],
                summary_samples=summaries[i],
                level=level,
                n_boot=n_boot,
                n_valid=n_valid,
                seed=seed,
            )
        )
    return results


@dataclass(frozen=True, eq=False)
class RocCurve:
    """ROC at every distinct threshold, anchored at (0, 0) with threshold +inf."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_pos: int
    n_neg: int


def _roc_inputs(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _checks.binary_labels(labels)
    s = _checks.finite_vector(scores, "scores", allow_empty=False)
    _checks.same_length(labels=y, scores=s)
    _checks.both_classes(y)
    return y, s


def _roc_events(labels: np.ndarray, scores: np.ndarray) -> _Events:
    """One unit per sample: a positive adds to y's denominator, a negative to x's."""
    return _events(scores, labels, np.arange(labels.size), labels, ~labels)


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> RocCurve:
    """ROC over all distinct score thresholds (like scikit-learn with drop_intermediate=False)."""
    y, s = _roc_inputs(labels, scores)
    ev = _roc_events(y, s)
    x, t = _curves(ev)
    return RocCurve(
        fpr=x[0],
        tpr=t[0],
        thresholds=np.r_[np.inf, ev.thresholds],
        n_pos=int(y.sum()),
        n_neg=int((~y).sum()),
    )


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; tied scores count one half (Mann-Whitney)."""
    curve = roc_curve(labels, scores)
    return float(np.trapezoid(curve.tpr, curve.fpr))


def sensitivity_at_fpr(curve: RocCurve, fprs: ArrayLike = PAPER_FPRS) -> np.ndarray:
    """Sensitivity (TPR) at the given false-positive rates, linearly interpolated."""
    query = _checks.rates(fprs, "fprs", upper=1.0)
    return _interp(curve.fpr[None], curve.tpr[None], query)[0]


def _placements(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values V10 (per positive) and V01 (per negative), from midranks.

    V10_i = mean_j psi(X_i, Y_j) and V01_j = mean_i psi(X_i, Y_j), psi = 1, 1/2, 0 for
    X > Y, X = Y, X < Y (Sun and Xu's rank formulation of DeLong et al. 1988).
    """
    pos, neg = scores[labels], scores[~labels]
    m, n = pos.size, neg.size
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least 2 positives and 2 negatives, got {m} and {n}")
    ranks = stats.rankdata(np.r_[pos, neg])
    v10 = (ranks[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (ranks[m:] - stats.rankdata(neg)) / m
    return v10, v01


def delong_variance(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """AUC and its DeLong variance S10/m + S01/n (sample variances of the placements)."""
    y, s = _roc_inputs(labels, scores)
    v10, v01 = _placements(y, s)
    var = v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size
    return float(v10.mean()), float(var)


@dataclass(frozen=True)
class AucInterval:
    """An AUC with its normal-approximation interval (clipped to [0, 1])."""

    auc: float
    low: float
    high: float
    se: float
    level: float


def delong_interval(labels: ArrayLike, scores: ArrayLike, level: float = 0.95) -> AucInterval:
    """DeLong confidence interval for one AUC."""
    level = _checks.probability_level(level)
    auc, var = delong_variance(labels, scores)
    se = float(np.sqrt(var))
    half = float(stats.norm.ppf(0.5 + level / 2.0)) * se
    return AucInterval(auc, max(0.0, auc - half), min(1.0, auc + half), se, level)


@dataclass(frozen=True)
class DelongTest:
    """DeLong's test of two correlated AUCs (two models scored on the same cases)."""

    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float


def delong_test(labels: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike) -> DelongTest:
    """Two-sided test of AUC_a = AUC_b using the covariance of the placement values."""
    y, a = _roc_inputs(labels, scores_a)
    b = _checks.finite_vector(scores_b, "scores_b", allow_empty=False)
    _checks.same_length(labels=y, scores_b=b)
    v10_a, v01_a = _placements(y, a)
    v10_b, v01_b = _placements(y, b)
    cov = np.cov(np.stack([v10_a, v10_b])) / v10_a.size + np.cov(np.stack([v01_a, v01_b])) / (
        v01_a.size
    )
    auc_a, auc_b = float(v10_a.mean()), float(v10_b.mean())
    diff = auc_a - auc_b
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1], 0.0)))
    if se > 0:
        z = diff / se
        p = float(2.0 * stats.norm.sf(abs(z)))
    else:
        z = 0.0 if diff == 0 else float(np.copysign(np.inf, diff))
        p = 1.0 if diff == 0 else 0.0
    return DelongTest(auc_a, auc_b, diff, se, float(z), p)


def roc_bootstrap(
    labels: ArrayLike,
    scores: ArrayLike,
    fprs: ArrayLike = PAPER_FPRS,
    clusters: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    fpr_grid: ArrayLike | None = None,
) -> CurveBootstrap:
    """Bootstrap intervals for sensitivity at `fprs`, a pointwise ROC band, and the AUC.

    Samples are resampled whole clusters at a time when `clusters` (one id per sample, e.g. the
    video of each frame) is given, otherwise one sample at a time. Resamples lacking a class are
    dropped (`n_valid` counts the rest).
    """
    y, s = _roc_inputs(labels, scores)
    points = _checks.rates(fprs, "fprs", upper=1.0)
    grid = np.linspace(0.0, 1.0, 101) if fpr_grid is None else _checks.rates(fpr_grid, "fpr_grid")
    return _bootstrap(
        [_roc_events(y, s)], clusters, points, grid, _auc_summary, n_boot, seed, level
    )[0]
