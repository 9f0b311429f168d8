"""SYNTHETIC B-mode images of the far wall of the common carotid artery: the cimt app's default
data, a demonstration of the pipeline and never a medical finding.

Per column, from the top: the dark lumen (blood speckle, sometimes a faint reverberation band),
the lumen-intima interface (LI) where the thin bright intima echo starts, the darker media, and
the media-adventitia interface (MA) where the bright, layered adventitia starts, fading with
depth. LI and MA are the leading (dark-to-bright) edges of those echoes, as experts trace them;
they are 0.5-1.0 mm apart (a subject's IMT, varying +-10% along the wall), curve and tilt gently.
The echogenicity map is blurred by a point spread function, multiplied by correlated Rayleigh
speckle, attenuated with depth and log-compressed. Not too easy: the intima echo fades in places
(where it vanishes the reference trace has a gap, as an expert leaves one), the adventitia holds
brighter layers below MA, and the lumen may hold clutter, so the strongest dark-to-bright
transitions of a column are not always LI and MA. The pixel size (about 0.06 mm) is recorded
per image; a subject's images share its IMT and echogenicity.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

DESCRIPTION = ("SYNTHETIC carotid B-mode images (ftjax.apps.cimt.synthetic): a demonstration of "
               "the pipeline, not patients and not a medical finding")


@dataclasses.dataclass(frozen=True, eq=False)
class CarotidImage:
    """One image with its reference: ``li`` / ``ma`` hold a row per column (sub-pixel), NaN
    where the interface was not traced."""

    id: str
    subject: str
    image: np.ndarray  # uint8 [H, W]
    mm_per_pixel: float
    li: np.ndarray  # float [W]
    ma: np.ndarray  # float [W]


def _smooth_walk(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """A smooth random curve of unit standard deviation."""
    v = ndimage.gaussian_filter1d(rng.normal(size=n + 6 * int(sigma)), sigma)[3 * int(sigma):][:n]
    return (v - v.mean()) / (v.std() + 1e-9)


def _speckle(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Fully developed speckle: the magnitude of a correlated complex Gaussian field (Rayleigh),
    grains longer laterally than axially, mean 1."""
    field = [ndimage.gaussian_filter(rng.normal(size=shape), (0.8, 1.8)) for _ in range(2)]
    r = np.hypot(*field)
    return r / r.mean()


def carotid_image(seed: int, subject: int, index: int, shape: tuple[int, int] = (80, 288),
                  mm_per_pixel: float = 0.06) -> CarotidImage:
    """Image ``index`` of SYNTHETIC subject ``subject`` (fixed by ``seed``)."""
    h, w = shape
    person = np.random.default_rng([seed, subject, 0xC1])
    rng = np.random.default_rng([seed, subject, index, 0xC2])
    px = mm_per_pixel * rng.uniform(0.92, 1.08)
    x = np.arange(w, dtype=float)
    # geometry: LI depth with tilt, curvature and a small wobble; IMT from the subject
    centre = rng.uniform(0.42, 0.52) * h
    tilt = rng.uniform(-0.04, 0.04)
    bend = rng.uniform(-5, 5) * ((x - w / 2) / (w / 2)) ** 2
    li = centre + tilt * (x - w / 2) + bend + 0.8 * _smooth_walk(rng, w, 12)
    imt_mm = person.uniform(0.5, 1.0) * (1 + 0.1 * _smooth_walk(rng, w, 30))
    ma = li + imt_mm / px
    # echogenicity of each layer (relative), per column where it varies along the wall
    intima = person.uniform(0.45, 0.8) * np.clip(0.65 + 0.45 * _smooth_walk(rng, w, 15), 0.3, 1)
    if rng.uniform() < 0.4:  # a stretch where the intima echo all but vanishes
        at, span = rng.integers(w // 5, 4 * w // 5), rng.integers(8, 24)
        intima[max(0, at - span // 2):at + span // 2] *= 0.1
    media = person.uniform(0.12, 0.22)
    adventitia = person.uniform(0.75, 1.0)
    rows = np.arange(h, dtype=float)[:, None]
    depth_li, depth_ma = rows - li[None], rows - ma[None]
    thickness = rng.uniform(1.5, 3.0)  # intima echo, pixels
    echo = np.full((h, w), 0.04)  # lumen
    echo = np.where(depth_li >= 0, media, echo)
    echo = np.where((depth_li >= 0) & (depth_li < thickness), intima[None], echo)
    fade = 0.45 + 0.55 * np.exp(-np.clip(depth_ma, 0, None) * px / 1.2)
    layers = 1 + 0.35 * np.sin(2 * np.pi * np.clip(depth_ma, 0, None) * px / 0.45
                               + rng.uniform(0, 2 * np.pi))
    echo = np.where(depth_ma >= 0, adventitia * fade * layers, echo)
    if rng.uniform() < 0.5:  # reverberation clutter in the lumen
        at = li.min() - rng.uniform(6, 18)
        band = np.exp(-0.5 * ((rows - at) / rng.uniform(1, 2.5)) ** 2)
        reach = (x > rng.uniform(0, w / 2)) & (x < rng.uniform(w / 2, w))
        echo = echo + rng.uniform(0.1, 0.3) * band * reach[None]
    # imaging: point spread, speckle, depth attenuation, log compression, noise
    echo = ndimage.gaussian_filter(echo, (0.7, 1.0)) * _speckle(rng, (h, w))
    echo *= np.exp(-rng.uniform(0.3, 0.8) * rows / h)
    gain = rng.uniform(20, 40)
    img = np.log1p(gain * echo) / np.log1p(gain * 1.6) + rng.normal(0, 0.02, (h, w))
    image = np.clip(img * 255, 0, 255).astype(np.uint8)
    # the expert's traces: a span of columns, LI broken where its echo vanished
    start, stop = int(rng.integers(0, w // 10)), int(rng.integers(9 * w // 10, w))
    traced = (x >= start) & (x <= stop)
    li_ref = np.where(traced & (intima > 0.1), li, np.nan)
    ma_ref = np.where(traced, ma, np.nan)
    return CarotidImage(f"synthetic-{subject:05d}-{index}", f"synthetic-{subject:05d}", image,
                        float(px), li_ref, ma_ref)
