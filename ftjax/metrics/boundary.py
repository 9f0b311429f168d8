"""Intima-media boundary errors (the CUBS convention), in micrometres.

Each boundary is one row position per image column (float, sub-pixel allowed), NaN where the
trace does not reach that column. An interface's error is the mean |system row - reference row|
over the columns both traces cover, times the pixel size. The intima-media thickness (IMT) is the
mean MA - LI row distance; system and reference IMT are taken over the same columns (those where
all four traces exist) so that their difference measures thickness, not coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

_UM_PER_MM = 1000.0


def _trace(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be non-empty and 1-D (a row per column), got {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values; use NaN for columns without a trace")
    return arr


def _overlap(pred: np.ndarray, ref: np.ndarray, what: str) -> np.ndarray:
    both = np.isfinite(pred) & np.isfinite(ref)
    if not both.any():
        raise ValueError(f"{what}: the system and reference traces share no column")
    return both


@dataclass(frozen=True)
class BoundaryErrors:
    """One image's errors in micrometres; `*_columns` count the columns each was computed over."""

    li_um: float
    ma_um: float
    imt_pred_um: float
    imt_ref_um: float
    imt_signed_um: float
    imt_abs_um: float
    li_columns: int
    ma_columns: int
    imt_columns: int


def boundary_errors(
    li_pred: ArrayLike,
    li_ref: ArrayLike,
    ma_pred: ArrayLike,
    ma_ref: ArrayLike,
    pixel_size_mm: float,
) -> BoundaryErrors:
    """LI and MA mean absolute errors and the IMT error of one image.

    `pixel_size_mm` is the vertical size of a pixel in mm (CUBS's CF files give mm/pixel).
    Signed IMT error is system minus reference.
    """
    named = {"li_pred": li_pred, "li_ref": li_ref, "ma_pred": ma_pred, "ma_ref": ma_ref}
    traces = {name: _trace(v, name) for name, v in named.items()}
    lengths = {name: t.size for name, t in traces.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"traces must have one entry per image column; lengths {lengths}")
    px = float(pixel_size_mm)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel_size_mm must be positive, got {pixel_size_mm}")
    scale = px * _UM_PER_MM
    lp, lr, mp, mr = traces.values()
    li = _overlap(lp, lr, "LI")
    ma = _overlap(mp, mr, "MA")
    imt = li & ma
    if not imt.any():
        raise ValueError("IMT: no column has all four traces (LI and MA, system and reference)")
    imt_pred = float(np.mean(mp[imt] - lp[imt])) * scale
    imt_ref = float(np.mean(mr[imt] - lr[imt])) * scale
    return BoundaryErrors(
        li_um=float(np.mean(np.abs(lp[li] - lr[li]))) * scale,
        ma_um=float(np.mean(np.abs(mp[ma] - mr[ma]))) * scale,
        imt_pred_um=imt_pred,
        imt_ref_um=imt_ref,
        imt_signed_um=imt_pred - imt_ref,
        imt_abs_um=abs(imt_pred - imt_ref),
        li_columns=int(li.sum()),
        ma_columns=int(ma.sum()),
        imt_columns=int(imt.sum()),
    )


@dataclass(frozen=True, eq=False)
class BoundaryTable:
    """Per-image errors of one configuration as arrays (box plots, paired tests)."""

    li_um: np.ndarray
    ma_um: np.ndarray
    imt_signed_um: np.ndarray
    imt_abs_um: np.ndarray

    @classmethod
    def from_images(cls, errors: Sequence[BoundaryErrors]) -> BoundaryTable:
        """Stack per-image results, in order (keep the same image order across configurations)."""
        if len(errors) == 0:
            raise ValueError("no images given")
        return cls(
            li_um=np.array([e.li_um for e in errors]),
            ma_um=np.array([e.ma_um for e in errors]),
            imt_signed_um=np.array([e.imt_signed_um for e in errors]),
            imt_abs_um=np.array([e.imt_abs_um for e in errors]),
        )

    def summary(self) -> dict[str, tuple[float, float]]:
        """Mean and sample SD (NaN for one image) per field: the paper's "mean +- SD" in um."""
        out = {}
        for field in fields(self):
            values = getattr(self, field.name)
            sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            out[field.name] = (float(values.mean()), sd)
        return out
