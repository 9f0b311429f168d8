"""A CT volume in Hounsfield units with its voxel spacing and per-clot instance labels.

Every PE data source (the synthetic generator, the CAD-PE and FUMPE readers) returns a `CTScan`, so
candidate generation and patch extraction see one format: arrays in (z, y, x) index order and
spacing in millimetres in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class CTDataError(ValueError):
    """A CT volume, mask or file that does not meet what ftjax expects (the message says what)."""


@dataclass(frozen=True, eq=False)
class CTScan:
    """One CT scan.

    Attributes:
      case_id: patient / case identifier (used to split by patient).
      hu: float32 (z, y, x) intensities in Hounsfield units.
      spacing: (z, y, x) voxel spacing in mm, all positive.
      clots: int32 (z, y, x) instance labels: 0 background, 1..n one label per clot. All zero is a
        valid scan without emboli. Given as an integer or boolean array of the volume's shape.
      source: "synthetic" for generated volumes, otherwise the dataset name ("cadpe", "fumpe").
    """

    case_id: str
    hu: np.ndarray
    spacing: tuple[float, float, float]
    clots: np.ndarray
    source: str

    def __post_init__(self) -> None:
        where = f"CTScan {self.case_id!r} ({self.source})"
        hu = np.asarray(self.hu)
        if hu.ndim != 3 or hu.size == 0:
            raise CTDataError(
                f"{where}: hu must be 3-D (z, y, x) with no empty axis, got shape {hu.shape}"
            )
        if not np.issubdtype(hu.dtype, np.number) or np.issubdtype(hu.dtype, np.complexfloating):
            raise CTDataError(f"{where}: hu must be real numbers, got dtype {hu.dtype}")
        hu = hu.astype(np.float32, copy=False)
        if not np.isfinite(hu).all():
            raise CTDataError(f"{where}: hu contains NaN or infinite values")
        try:
            spacing = tuple(float(s) for s in np.asarray(self.spacing, dtype=np.float64).ravel())
        except (TypeError, ValueError):
            spacing = ()
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise CTDataError(
                f"{where}: spacing must be three positive finite mm values (z, y, x), "
                f"got {self.spacing!r}"
            )
        clots = np.asarray(self.clots)
        if clots.shape != hu.shape:
            raise CTDataError(
                f"{where}: clot mask shape {clots.shape} does not match volume shape {hu.shape}"
            )
        if clots.dtype.kind not in "biu":  # integers are finite: NaN or 0.5 is no clot label
            raise CTDataError(f"{where}: clot labels must be integers, got dtype {clots.dtype}")
        if clots.size and (clots.min() < 0 or clots.max() > np.iinfo(np.int32).max):
            raise CTDataError(f"{where}: clot labels must be >= 0 and fit int32, got "
                              f"{clots.min()}..{clots.max()}")
        object.__setattr__(self, "hu", hu)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "clots", clots.astype(np.int32, copy=False))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Volume shape (z, y, x)."""
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def n_clots(self) -> int:
        """Number of distinct clot labels present (0 for a scan without emboli)."""
        return int(np.count_nonzero(np.unique(self.clots)))


def perpendicular_basis(axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) for unit vectors a [N, 3] in (z, y, x) mm space: u is orthogonal to a, built from
    the coordinate axis least aligned with a (so it is well conditioned), and v = a x u. The
    frame is a deterministic function of a, so patch orientations are reproducible."""
    axes = np.asarray(axes, dtype=np.float64)
    helper = np.eye(3)[np.argmin(np.abs(axes), axis=1)]
    u = helper - np.sum(helper * axes, axis=1, keepdims=True) * axes
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u, np.cross(axes, u)
