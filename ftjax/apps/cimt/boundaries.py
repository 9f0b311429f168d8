"""From an ROI's probability maps to the LI and MA boundaries (PAPER.md section 4), and the
non-learned baseline they are compared with.

Rows grow with depth; a boundary is one (sub-pixel) row per column of the ROI. Per column the
system starts at the row of highest LI probability and the row of highest MA probability below
it, then two open active contours (snakes) smooth the step-shaped starts: each point moves only
vertically, pulled by the gradient of its (Gaussian-smoothed) probability map and held by
tension (alpha, first differences) and rigidity (beta, second differences), solved
semi-implicitly. After every step MA is kept at least ``gap`` rows below LI, so it never
crosses above it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage


class RoiError(ValueError):
    """A region of interest that cannot be scored (the message names the image)."""


@dataclasses.dataclass(frozen=True)
class Roi:
    """Rows [top, bottom) and columns [left, right) of an image."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.top:self.bottom, self.left:self.right]


def roi_of(image_id: str, shape: tuple[int, int], li: np.ndarray, ma: np.ndarray,
           mm_per_pixel: float, height_mm: float, patch: int) -> Roi:
    """The box a user would draw around the far wall: the columns the expert traced (LI or MA)
    and a band ``height_mm`` high centred on the traces' mean depth, kept inside the image.
    Only its position comes from the reference; nothing inside it does."""
    traced = np.isfinite(li) | np.isfinite(ma)
    if not traced.any():
        raise RoiError(f"{image_id}: no traced column: cannot place the region of interest")
    cols = np.flatnonzero(traced)
    left, right = int(cols[0]), int(cols[-1]) + 1
    rows = min(shape[0], max(1, int(round(height_mm / mm_per_pixel))))
    centre = float(np.nanmean(np.concatenate([li[np.isfinite(li)], ma[np.isfinite(ma)]])))
    top = int(np.clip(round(centre - rows / 2), 0, shape[0] - rows))
    roi = Roi(top, top + rows, left, right)
    if min(roi.shape) < patch:
        raise RoiError(f"{image_id}: region of interest {roi.shape[0]}x{roi.shape[1]} px is "
                       f"smaller than a {patch}-px patch (a band of {height_mm} mm at "
                       f"{mm_per_pixel:.4f} mm/px over {right - left} traced columns)")
    return roi


@dataclasses.dataclass(frozen=True)
class SnakeConfig:
    """alpha: tension; beta: rigidity; step: time step; iterations; force: weight of the
    probability gradient; sigma: smoothing of the maps (rows); gap: least MA - LI rows."""

    alpha: float = 0.1
    beta: float = 1.0
    step: float = 1.0
    iterations: int = 200
    force: float = 4.0
    sigma: float = 1.5
    gap: float = 1.0


def initial_rows(p_li: np.ndarray, p_ma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column the row of highest LI probability, and of highest MA probability below it
    (the LI row itself when LI is the last row)."""
    li = p_li.argmax(axis=0)
    below = np.arange(p_ma.shape[0])[:, None] > li[None]
    ma = np.where(below, p_ma, -np.inf).argmax(axis=0)
    ma = np.where(below.any(axis=0), ma, li)
    return li.astype(float), ma.astype(float)


def _smoothing_inverse(n: int, config: SnakeConfig) -> np.ndarray:
    """(I + step * (alpha D1'D1 + beta D2'D2))^-1 for an open contour of n points."""
    eye = np.eye(n)
    d1, d2 = np.diff(eye, 1, axis=0), np.diff(eye, 2, axis=0)
    a = config.alpha * d1.T @ d1 + config.beta * d2.T @ d2
    return np.linalg.inv(eye + config.step * a)


def _sample(field: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """field[rows[j], j], linear between rows, clamped to the field."""
    y = np.clip(rows, 0, field.shape[0] - 1)
    lo = np.floor(y).astype(int)
    hi = np.minimum(lo + 1, field.shape[0] - 1)
    cols = np.arange(field.shape[1])
    t = y - lo
    return (1 - t) * field[lo, cols] + t * field[hi, cols]


def _keep_order(li: np.ndarray, ma: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    bad = ma < li + gap
    mid = (li + ma) / 2
    return np.where(bad, mid - gap / 2, li), np.where(bad, mid + gap / 2, ma)


def snakes(p_li: np.ndarray, p_ma: np.ndarray, config: SnakeConfig = SnakeConfig()
           ) -> tuple[np.ndarray, np.ndarray]:
    """LI and MA rows per column of an ROI from its probability maps [rows, cols]."""
    rows = p_li.shape[0]
    li, ma = _keep_order(*initial_rows(p_li, p_ma), config.gap)
    if p_li.shape[1] < 3:
        return li, ma
    inverse = _smoothing_inverse(p_li.shape[1], config)
    grads = [np.gradient(ndimage.gaussian_filter1d(p.astype(float), config.sigma, axis=0),
                         axis=0) for p in (p_li, p_ma)]
    for _ in range(config.iterations):
        li = inverse @ (li + config.step * config.force * _sample(grads[0], li))
        ma = inverse @ (ma + config.step * config.force * _sample(grads[1], ma))
        li, ma = _keep_order(np.clip(li, 0, rows - 1), np.clip(ma, 0, rows - 1), config.gap)
    return li, ma


def transitions_baseline(roi: np.ndarray, sigma: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """The non-learned baseline: per column the two strongest dark-to-bright transitions of the
    smoothed ROI (local maxima of the downward intensity increase, at least 2 rows apart), the
    upper one LI and the lower one MA; a transition's row is the first brighter row. A column
    with a single transition gives it to both."""
    smooth = ndimage.gaussian_filter(roi.astype(float), (sigma, 2 * sigma))
    rise = np.diff(smooth, axis=0)  # rise[y] between rows y and y + 1
    peak = (rise > 0) & (rise >= np.roll(rise, 1, 0)) & (rise >= np.roll(rise, -1, 0))
    peak[0], peak[-1] = False, False
    strength = np.where(peak, rise, -np.inf)
    first = strength.argmax(axis=0)
    cols = np.arange(roi.shape[1])
    near = np.abs(np.arange(rise.shape[0])[:, None] - first[None]) < 2
    second = np.where(near, -np.inf, strength).argmax(axis=0)
    has_second = np.isfinite(np.where(near, -np.inf, strength)[second, cols])
    second = np.where(has_second, second, first)
    upper, lower = np.minimum(first, second), np.maximum(first, second)
    return upper + 1.0, lower + 1.0
