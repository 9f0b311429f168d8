"""FROC analysis: hit assignment per case, the curve, summary sensitivities, bootstrap bands.

Conventions (CAMELYON16, LUNA16, MONAI, CAD-PE, the MICCAI 2015 polyp challenge): a detection
inside (or within a tolerance of) a lesion hits it; several hits on one lesion count once, at the
highest score, and the extra hits are not false positives; detections on ignored lesions count as
neither; missed lesions stay in the denominator; every other detection is a false positive.

Typical use, one `CaseHits` per volume (PE) or frame (polyp)::

    cases = [assign_hits(points, scores, mask, spacing=sp, tolerance_mm=2.0) for ...]
    curve = froc_from_cases(cases)
    sens = sensitivity_at(curve, [1, 2, 3, 4, 5])
    bands = froc_bootstrap(cases, [1, 2, 3, 4, 5], clusters=patient_ids, seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ftjax.metrics import _checks
from ftjax.metrics.roc import CurveBootstrap, _bootstrap, _curves, _Events, _events, _interp

#: LUNA16's operating points: 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan.
LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

# Relative slack on distance comparisons so that a tolerance equal to a voxel multiple is inclusive.
_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class CaseHits:
    """Outcome of one case's detections.

    `fp_scores`: scores of the false positives. `lesion_scores`: best score of each detected
    lesion, with `lesion_ids` (mask label or centre index) in the same order. `num_lesions`:
    lesions in the case, detected or not, ignored ones excluded. `num_ignored`: detections dropped
    because they fell on an ignored lesion.
    """

    fp_scores: np.ndarray
    lesion_scores: np.ndarray
    num_lesions: int
    lesion_ids: np.ndarray | None = None
    num_ignored: int = 0

    def __post_init__(self) -> None:
        fp = _checks.finite_vector(self.fp_scores, "fp_scores")
        hits = _checks.finite_vector(self.lesion_scores, "lesion_scores")
        ids = np.arange(hits.size) if self.lesion_ids is None else np.asarray(self.lesion_ids)
        _checks.same_length(lesion_scores=hits, lesion_ids=ids)
        if int(self.num_lesions) != self.num_lesions or self.num_lesions < hits.size:
            raise ValueError(
                f"num_lesions ({self.num_lesions}) must be an integer >= the number of detected "
                f"lesions ({hits.size})"
            )
        object.__setattr__(self, "fp_scores", fp)
        object.__setattr__(self, "lesion_scores", hits)
        object.__setattr__(self, "lesion_ids", ids)
        object.__setattr__(self, "num_lesions", int(self.num_lesions))

    @classmethod
    def from_assignments(
        cls, scores: ArrayLike, lesion: ArrayLike, num_lesions: int, num_ignored: int = 0
    ) -> CaseHits:
        """Collapse per-detection assignments (`lesion` = the id of the lesion each detection
        hits, negative for a false positive): hits on one lesion count once, at the best score."""
        scores, lesion = np.asarray(scores, dtype=float), np.asarray(lesion)
        _checks.same_length(scores=scores, lesion=lesion)
        is_hit = lesion >= 0
        ids, which = np.unique(lesion[is_hit], return_inverse=True)
        best = np.full(ids.size, -np.inf)
        np.maximum.at(best, which, scores[is_hit])
        return cls(scores[~is_hit], best, num_lesions, ids, num_ignored)


def _detections(points: ArrayLike, scores: ArrayLike, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    s = _checks.finite_vector(scores, "scores")
    pts = np.asarray(points, dtype=float)
    if pts.size == 0 and s.size == 0:
        return np.zeros((0, ndim)), s
    if pts.ndim != 2 or pts.shape[1] != ndim:
        raise ValueError(f"points must be (n, {ndim}), one row per detection; got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points contain NaN or infinite coordinates")
    _checks.same_length(points=pts, scores=s)
    return pts, s


def _spacing(spacing: ArrayLike | None, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    sp = np.asarray(spacing, dtype=float).reshape(-1)
    if sp.size != ndim or not np.isfinite(sp).all() or (sp <= 0).any():
        raise ValueError(f"spacing must be {ndim} positive numbers (one per axis), got {spacing}")
    return sp


def _nearest_label(mask: np.ndarray, voxel: np.ndarray, spacing: np.ndarray, tol: float) -> int:
    """Label of the lesion voxel nearest to `voxel` within `tol` mm (ties: lowest label), or 0."""
    reach = np.floor(tol / spacing + _EPS).astype(int)
    lo = np.maximum(voxel - reach, 0)
    hi = np.minimum(voxel + reach + 1, mask.shape)
    window = mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    labelled = window != 0
    labels = window[labelled]
    dist2 = ((((np.argwhere(labelled) + lo) - voxel) * spacing) ** 2).sum(axis=1)
    near = dist2 <= tol**2 * (1 + _EPS)
    if not near.any():
        return 0
    first = np.lexsort((labels[near], dist2[near]))[0]
    return int(labels[near][first])


def assign_hits(
    points: ArrayLike,
    scores: ArrayLike,
    instance_mask: ArrayLike,
    spacing: ArrayLike | None = None,
    tolerance_mm: float = 0.0,
    ignore_labels: Sequence[int] = (),
) -> CaseHits:
    """Score one case's detections against an instance-labelled 2-D or 3-D mask.

    `points` are (n, mask.ndim) voxel coordinates in the mask's axis order, rounded to the nearest
    voxel; a point outside the mask is an error (usually a swapped axis order). The detection hits
    the lesion whose label it lands on; with `tolerance_mm` > 0 a point on background hits the
    nearest lesion voxel within that distance, measured with `spacing` (mm per axis), which is the
    same as dilating every lesion by the tolerance. Labels in `ignore_labels` are neither hits
    nor false positives and are not counted as lesions.
    """
    mask = np.asarray(instance_mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"instance_mask must be 2-D or 3-D, got {mask.ndim}-D shape {mask.shape}")
    if mask.dtype.kind not in "biu":
        raise ValueError(f"instance_mask must hold integer labels, got dtype {mask.dtype}")
    mask = mask.astype(np.int64) if mask.dtype == bool else mask
    if mask.size == 0:
        raise ValueError("instance_mask is empty")
    if mask.min() < 0:
        raise ValueError("instance_mask has negative labels; 0 is background, lesions are >= 1")
    pts, s = _detections(points, scores, mask.ndim)
    sp = _spacing(spacing, mask.ndim)
    tol = float(tolerance_mm)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance_mm must be >= 0, got {tolerance_mm}")
    if tol > 0 and spacing is None:
        raise ValueError("tolerance_mm > 0 needs the voxel spacing in mm")
    ignore = np.asarray(ignore_labels, dtype=np.int64).reshape(-1)
    if (ignore <= 0).any():
        raise ValueError(f"ignore_labels must be lesion labels >= 1, got {ignore.tolist()}")

    voxels = np.rint(pts).astype(np.int64)
    outside = ((voxels < 0) | (voxels >= np.asarray(mask.shape))).any(axis=1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{int(outside.sum())} point(s) fall outside the mask of shape {mask.shape} "
            f"(first: index {i}, {pts[i].tolist()}); check the axis order"
        )
    labels = mask[tuple(voxels.T)].astype(np.int64)
    if tol > 0:
        for i in np.flatnonzero(labels == 0):
            labels[i] = _nearest_label(mask, voxels[i], sp, tol)
    present = np.unique(mask[mask != 0]).astype(np.int64)
    ignored = np.isin(labels, ignore)
    hit = np.where(labels == 0, -1, labels)[~ignored]
    lesions = present[~np.isin(present, ignore)]
    return CaseHits.from_assignments(s[~ignored], hit, lesions.size, int(ignored.sum()))


def assign_hits_to_centres(
    points: ArrayLike,
    scores: ArrayLike,
    centres: ArrayLike,
    radius: float | ArrayLike,
    spacing: ArrayLike | None = None,
    ignore: ArrayLike | None = None,
) -> CaseHits:
    """Score one case's detections against lesion centres (the LUNA16 form).

    A detection hits the nearest centre whose `radius` (scalar, or one per lesion) contains it.
    Distances are in the coordinates' units, or in mm after multiplying each axis by `spacing`
    when the coordinates are voxel indices. `ignore` (one bool per centre) marks lesions whose
    hits count as neither hit nor false positive. `lesion_ids` are centre indices.
    """
    c = np.asarray(centres, dtype=float)
    if c.size == 0:
        pts = np.asarray(points, dtype=float)
        c = np.zeros((0, pts.shape[1] if pts.ndim == 2 else 1))
    if c.ndim != 2 or not np.isfinite(c).all():
        raise ValueError(f"centres must be a finite (n_lesions, ndim) array, got shape {c.shape}")
    pts, s = _detections(points, scores, c.shape[1])
    r = np.broadcast_to(np.asarray(radius, dtype=float), (c.shape[0],))
    if not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("radius must be finite and >= 0")
    skip = np.zeros(c.shape[0], bool) if ignore is None else np.asarray(ignore, dtype=bool)
    _checks.same_length(centres=c, ignore=skip)
    sp = _spacing(spacing, c.shape[1])

    dist = np.linalg.norm((pts[:, None, :] - c[None, :, :]) * sp, axis=-1)
    dist = np.where(dist <= r * (1 + _EPS), dist, np.inf)
    # A last column, farther than any reachable centre, stands for "no lesion within reach".
    dist = np.concatenate([dist, np.full((s.size, 1), np.finfo(float).max)], axis=1)
    nearest = dist.argmin(axis=1)
    ignored = np.r_[skip, False][nearest]
    hit = np.where(nearest < c.shape[0], nearest, -1)
    return CaseHits.from_assignments(
        s[~ignored], hit[~ignored], int(np.sum(~skip)), int(ignored.sum())
    )


@dataclass(frozen=True, eq=False)
class FrocCurve:
    """FROC at every distinct score threshold, anchored at (0 FPs, 0 sensitivity, +inf)."""

    fps: np.ndarray
    sensitivity: np.ndarray
    thresholds: np.ndarray
    num_lesions: int
    num_cases: int


def froc_curve(
    fp_scores: ArrayLike, lesion_scores: ArrayLike, num_lesions: int, num_cases: int
) -> FrocCurve:
    """FROC from pooled false-positive scores and the best score of each detected lesion.

    `fps` is false positives per case and `sensitivity` the detected fraction of `num_lesions`,
    counting every detection whose score is >= the threshold.
    """
    fp = _checks.finite_vector(fp_scores, "fp_scores")
    hits = _checks.finite_vector(lesion_scores, "lesion_scores")
    num_lesions = _checks.positive_int(num_lesions, "num_lesions")
    num_cases = _checks.positive_int(num_cases, "num_cases")
    if hits.size > num_lesions:
        raise ValueError(f"{hits.size} lesion scores but only {num_lesions} lesions")
    ev = _events(
        np.r_[fp, hits],
        np.r_[np.zeros(fp.size, bool), np.ones(hits.size, bool)],
        np.zeros(fp.size + hits.size, dtype=np.int64),
        [num_lesions],
        [num_cases],
    )
    x, y = _curves(ev)
    return FrocCurve(x[0], y[0], np.r_[np.inf, ev.thresholds], num_lesions, num_cases)


def _cases(cases: Sequence[CaseHits]) -> list[CaseHits]:
    cases = list(cases)
    if not cases:
        raise ValueError("no cases given")
    if not all(isinstance(c, CaseHits) for c in cases):
        raise ValueError("cases must be CaseHits (see assign_hits)")
    if sum(c.num_lesions for c in cases) == 0:
        raise ValueError("the cases contain no lesions; sensitivity is undefined")
    return cases


def froc_from_cases(cases: Sequence[CaseHits]) -> FrocCurve:
    """FROC over a list of per-case results; FP rate is per case."""
    cases = _cases(cases)
    return froc_curve(
        np.concatenate([c.fp_scores for c in cases]),
        np.concatenate([c.lesion_scores for c in cases]),
        sum(c.num_lesions for c in cases),
        len(cases),
    )


def sensitivity_at(curve: FrocCurve, fp_rates: ArrayLike) -> np.ndarray:
    """Sensitivity at the given FP rates per case, linearly interpolated (LUNA16, MONAI).

    Beyond the curve's largest FP rate the sensitivity stays at its final value.
    """
    query = _checks.rates(fp_rates, "fp_rates")
    return _interp(curve.fps[None], curve.sensitivity[None], query)[0]


def estimable(fp_rates: ArrayLike, num_cases: int) -> np.ndarray:
    """bool per FP rate: whether `num_cases` cases can measure it. A rate r leaves room for
    r * num_cases false positives in all; below one, the curve there is a straight line from
    (0, 0) to the first false positive, an interpolation and not a measurement (0.001 FP/frame
    needs 1,000 frames)."""
    query = _checks.rates(fp_rates, "fp_rates")
    return query * _checks.positive_int(num_cases, "num_cases") >= 1 - 1e-9


def froc_score(curve: FrocCurve, fp_rates: ArrayLike = LUNA16_FP_RATES) -> float:
    """Mean sensitivity over the operating points (LUNA16's competition score by default)."""
    return float(sensitivity_at(curve, fp_rates).mean())


def _case_events(cases: Sequence[CaseHits]) -> _Events:
    """One bootstrap unit per case: hits over its lesions (y), false positives over 1 (x)."""
    cases = _cases(cases)
    fp_counts = [c.fp_scores.size for c in cases]
    hit_counts = [c.lesion_scores.size for c in cases]
    unit = np.arange(len(cases))
    return _events(
        np.concatenate([c.fp_scores for c in cases] + [c.lesion_scores for c in cases]),
        np.r_[np.zeros(sum(fp_counts), bool), np.ones(sum(hit_counts), bool)],
        np.r_[np.repeat(unit, fp_counts), np.repeat(unit, hit_counts)],
        [c.num_lesions for c in cases],
        np.ones(len(cases)),
    )


def _mean_summary(_x: np.ndarray, _y: np.ndarray, at_points: np.ndarray) -> np.ndarray:
    return at_points.mean(axis=1)


def _default_fp_grid(events: Sequence[_Events], points: np.ndarray) -> np.ndarray:
    """Linear and logarithmic FP rates up to the largest reached, so bands plot on either axis."""
    top = max(max(_curves(ev)[0][0, -1] for ev in events), points.max())
    n_cases = events[0].unit_neg.size
    grid = [np.linspace(0.0, top, 129), points]
    if top > 0:
        grid.append(np.geomspace(min(1.0 / n_cases, top), top, 129))
    return np.unique(np.concatenate(grid))


def froc_bootstrap(
    cases: Sequence[CaseHits],
    fp_rates: ArrayLike = LUNA16_FP_RATES,
    clusters: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    fp_grid: ArrayLike | None = None,
) -> CurveBootstrap:
    """Bootstrap intervals for sensitivity at `fp_rates`, the FROC score, and a pointwise band.

    Cases are resampled with replacement, or whole clusters (`clusters`: one id per case, e.g. the
    video of each frame, the patient of each volume). Each resample is re-thresholded from its
    own detections, so the FP rate axis is per resampled case. `grid` defaults to linear and
    logarithmic FP rates up to the largest reached.
    """
    ev = _case_events(cases)
    points = _checks.rates(fp_rates, "fp_rates")
    grid = _default_fp_grid([ev], points) if fp_grid is None else _checks.rates(fp_grid, "fp_grid")
    return _bootstrap([ev], clusters, points, grid, _mean_summary, n_boot, seed, level)[0]
