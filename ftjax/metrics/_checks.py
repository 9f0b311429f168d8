"""Input validation and the one case/cluster bootstrap resampler shared by the metrics.

Every public metric funnels its inputs through these helpers so that bad input (empty arrays,
NaN scores, mismatched lengths, wrong ranks) fails early with a ValueError that names the
argument, instead of surfacing later as a NaN in a table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike


def finite_vector(values: ArrayLike, name: str, *, allow_empty: bool = True) -> np.ndarray:
    """`values` as a 1-D float array with no NaN or infinity."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name} must be finite; {bad.size} value(s) are NaN or infinite "
            f"(first at index {bad[0]}: {arr[bad[0]]})"
        )
    return arr


def binary_labels(labels: ArrayLike, name: str = "labels") -> np.ndarray:
    """`labels` as a 1-D bool array; only 0/1 (or bool) values are accepted."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype != bool:
        values = np.unique(arr)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must contain only 0 and 1, found {values[:10].tolist()}")
    return arr.astype(bool)


def same_length(**arrays: np.ndarray) -> None:
    """Raise if the named 1-D arrays do not all have the same length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"length mismatch: {described}")


def both_classes(labels: np.ndarray, name: str = "labels") -> None:
    """Raise unless `labels` has at least one positive and one negative."""
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        raise ValueError(
            f"{name} needs both classes; got {n_pos} positive and {labels.size - n_pos} negative"
        )


def probability_level(level: float) -> float:
    """A confidence level strictly between 0 and 1."""
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def rates(values: ArrayLike, name: str, upper: float = np.inf) -> np.ndarray:
    """Non-empty 1-D array of operating points in [0, upper]."""
    arr = finite_vector(np.atleast_1d(np.asarray(values, dtype=float)), name, allow_empty=False)
    if (arr < 0).any() or (arr > upper).any():
        raise ValueError(f"{name} must lie in [0, {upper}], got {arr.tolist()}")
    return arr


def positive_int(value: int, name: str) -> int:
    """`value` as an int >= 1."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def cluster_codes(clusters: Sequence | np.ndarray | None, n_units: int) -> np.ndarray:
    """Integer cluster index (0..k-1) per unit; each unit is its own cluster when None."""
    if clusters is None:
        return np.arange(n_units)
    arr = np.asarray(clusters)
    if arr.ndim != 1 or len(arr) != n_units:
        raise ValueError(f"clusters must give one id per case ({n_units}), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("clusters contains NaN or infinite ids")
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


def bootstrap_counts(
    n_clusters: int, n_boot: int, rng: np.random.Generator, chunk: int
) -> Iterator[np.ndarray]:
    """Yield the (rows, n_clusters) draw counts of `n_boot` resamples, `chunk` rows at a time.

    Each resample draws `n_clusters` clusters with replacement; a cluster's count is how many
    times it was drawn, and every case in it carries that count as its weight, so clusters stay
    whole. With one case per cluster this is the ordinary case bootstrap. FROC, ROC and the
    paired comparisons all weight their events by these counts, so one seed gives every
    configuration exactly the same resamples.
    """
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, n_clusters, size=(rows, n_clusters))
        flat = (draws + n_clusters * np.arange(rows)[:, None]).ravel()
        yield np.bincount(flat, minlength=rows * n_clusters).reshape(rows, n_clusters).astype(float)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval along axis 0, ignoring NaN (degenerate) resamples."""
    alpha = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(samples, [alpha, 100.0 - alpha], axis=0)
    return low, high
