"""SYNTHETIC colonoscopy videos with polyps and non-informative frames, generated from a seed.

These videos are made up. They exist so that the ``polyp`` and ``frames`` pipelines (candidates,
patches, training, FROC / ROC) run end to end without private data and so that tests have exact
ground truth. They are not a model of any patient and nothing measured on them is a medical
finding; every `Video` has `synthetic=True` and a video id starting with "synthetic".

A video is one scene, a flat unrolled patch of colon wall drawn once in scene coordinates, seen by
a camera that moves smoothly over it (translation along the colon, sway, zoom, roll), so that
consecutive frames are strongly correlated and a split by video means something:
  - the wall: a pinkish albedo with low-frequency colour variation, a network of thin dark
    vessels at two scales, and a height field of haustral folds and bumps, shaded by a light
    near the camera (diffuse and specular: highlights on fold crests and domes);
  - per frame, the lumen (a dark, soft-edged hole where the colon recedes, drifting in the
    frame), vignetting, an exposure gain, and sensor noise;
  - polyps (0 in 40% of videos, else 1-2) as sessile domes or pedunculated heads on a stalk in
    the height field, with their own texture (pits instead of vessels) and a colour drawn inside
    the wall's range: they differ from the wall by shape, shading and texture. Placed along the
    camera path, they enter and leave the field of view. `masks` carries the instance id
    (1, 2) of the polyp seen at each pixel, 0 elsewhere.
Non-informative frames come in runs of consecutive frames with a strength in 0..1 that rises and
falls within the run (`DEGRADATIONS`; see `_degrade`); frames whose strength is below
`INFORMATIVE_BELOW` still show the mucosa and are labelled informative. Degradations change the
pixels, never the masks (a blurred polyp is still there).

Speed: rendering is vectorised numpy/scipy (the scene once, then one bilinear gather per frame).
Measured on one core of a shared 2-core machine, at the default 288 x 384: about 50 frames/s for
64-frame videos with degradations (65 without; the scene is ~0.4 s of each video), 75 frames/s for
300-frame videos, so a few hundred frames take a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

DEGRADATIONS = ("motion_blur", "defocus", "over_exposure", "under_exposure", "wall_contact",
                "bubbles")
INFORMATIVE_BELOW = 0.25  # a frame degraded less than this still shows the mucosa


@dataclass(frozen=True, eq=False)  # arrays do not compare with ==
class Video:
    """One SYNTHETIC colonoscopy video and its ground truth.

    frames: uint8 [T, H, W, 3] RGB.
    masks: uint8 [T, H, W], polyp instance id (1..n) at each pixel, 0 elsewhere.
    informative: bool [T], the frame label of the ``frames`` task (strength < INFORMATIVE_BELOW).
    degradation: per frame a name of `DEGRADATIONS` or "none"; strength: float32 [T] in 0..1.
    camera: float64 [T, 4], scene centre (y, x) of each frame, scale (scene pixels per frame
      pixel) and roll (radians): frame pixel p = (row, col) maps to the scene point
      centre + scale * [[cos, -sin], [sin, cos]] (p - mid), mid the frame centre.
    polyp_centres: float64 [n, 2] scene (y, x); polyp_radii: float64 [n], scene pixels that
      bound each polyp (stalk included).
    """

    video_id: str
    frames: np.ndarray
    masks: np.ndarray
    informative: np.ndarray
    degradation: tuple[str, ...]
    strength: np.ndarray
    camera: np.ndarray
    polyp_centres: np.ndarray
    polyp_radii: np.ndarray
    synthetic: bool = True

    @property
    def polyp_frames(self) -> np.ndarray:
        """bool [T], frames in which a polyp is seen."""
        return self.masks.reshape(len(self.masks), -1).any(axis=1)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Unit-variance Gaussian noise with features of about `scale` pixels, made on a coarse grid
    and zoomed up because low frequencies need no full-resolution filtering."""
    step = max(1, int(scale // 4))
    coarse = (shape[0] // step + 2, shape[1] // step + 2)
    n = ndimage.gaussian_filter(rng.standard_normal(coarse), scale / step, mode="wrap")
    n = ndimage.zoom(n, step, order=1)[: shape[0], : shape[1]]
    return ((n - n.mean()) / (n.std() + 1e-9)).astype(np.float32)


def _vessels(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Thin branching lines in 0..1 along the zero crossings of smooth noise (mucosal vessels)."""
    n = _smooth_noise(rng, shape, scale)
    return np.exp(-((n / 0.12) ** 2))


def _polyp(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, size: float
) -> tuple[np.ndarray, float]:
    """Height field of one polyp on a grid (yy, xx) and its bounding radius.

    A sessile polyp is an elliptic dome; a pedunculated one (40%) a rounder head on a narrow,
    lower stalk. The dome profile (1 - r^2)^0.6 is steep at the rim, so the outline is a shading
    edge, not a colour edge.
    """
    a = size * rng.uniform(0.8, 1.0)
    b = a * rng.uniform(0.6, 1.0)
    phi = rng.uniform(0, np.pi)
    dy, dx = yy - centre[0], xx - centre[1]
    u = (np.cos(phi) * dx + np.sin(phi) * dy) / a
    v = (-np.sin(phi) * dx + np.cos(phi) * dy) / b
    height = rng.uniform(0.4, 0.9) * a
    if rng.uniform() >= 0.4:
        dome = height * np.clip(1.0 - u**2 - v**2, 0.0, None) ** 0.6
        return dome, a
    head = 0.65 * a
    r = np.sqrt(dx**2 + dy**2) / head
    dome = 1.3 * height * np.clip(1.0 - r**2, 0.0, None) ** 0.6
    # The stalk runs from the head centre out along u for about 1.5 head radii.
    along = np.clip(u * a / (1.5 * head), 0.0, 1.0)
    off = np.sqrt((u * a - along * 1.5 * head) ** 2 + (v * b) ** 2) / (0.3 * head)
    stalk = 0.5 * height * np.clip(1.0 - off**2, 0.0, None) ** 0.6
    return np.maximum(dome, stalk), 2.6 * head


def _scene(
    rng: np.random.Generator, shape: tuple[int, int], unit: float,
    polyps: list[tuple[np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radiance (float32 [h, w, 3], 0..255+) and polyp labels of the unrolled wall, and the polyp
    bounding radii."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    colour = np.array([rng.uniform(175, 215), rng.uniform(95, 130), rng.uniform(75, 110)])
    albedo = colour * (1.0 + 0.07 * np.stack(
        [_smooth_noise(rng, shape, 60 * unit) for _ in range(3)], axis=-1))
    vessel = np.maximum(_vessels(rng, shape, 9 * unit), 0.6 * _vessels(rng, shape, 3.5 * unit))
    vessel_tint = np.array([0.35, 0.8, 0.7], dtype=np.float32) * rng.uniform(0.2, 0.45)

    period = rng.uniform(70, 120) * unit
    phase = (xx + 0.6 * period * _smooth_noise(rng, shape, 80 * unit)) / period
    ridge = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 6
    folds = rng.uniform(3, 9) * unit * ridge * np.clip(1 + 0.6 * _smooth_noise(
        rng, shape, 100 * unit), 0, None)
    height = folds + 3 * unit * _smooth_noise(rng, shape, 25 * unit)

    labels = np.zeros(shape, dtype=np.uint8)
    radii = []
    pits = _smooth_noise(rng, shape, 1.8 * unit)
    for label, (centre, size) in enumerate(polyps, start=1):
        lo = np.maximum(np.floor(centre - 3 * size).astype(int), 0)
        hi = np.ceil(centre + 3 * size).astype(int)
        box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))
        dome, radius = _polyp(rng, yy[box], xx[box], centre, size)
        inside = dome > 0
        labels[box][inside] = label
        # The polyp flattens the folds under it smoothly (no cliff at its rim) and rises above.
        flatten = 0.7 * np.clip(dome / (0.15 * dome.max()), 0, 1)
        height[box] = height[box] * (1 - flatten) + dome
        tint = 1.0 + rng.uniform(-0.08, 0.08, size=3)
        texture = 1.0 + rng.uniform(0.04, 0.1) * np.tanh(2 * pits[box][inside])
        albedo[box][inside] *= tint * texture[:, None]
        vessel[box][inside] *= rng.uniform(0.1, 0.4)
        radii.append(radius)
    albedo *= 1.0 - vessel[..., None] * vessel_tint

    gy, gx = np.gradient(height)
    norm = np.sqrt(gx**2 + gy**2 + 1.0)
    theta = rng.uniform(0, 2 * np.pi)
    light = np.array([0.55 * np.sin(theta), 0.55 * np.cos(theta), 0.835])
    diffuse = np.clip((-gy * light[0] - gx * light[1] + light[2]) / norm, 0.0, 1.0)
    half = (light + [0, 0, 1]) / np.linalg.norm(light + [0, 0, 1])
    spec = np.clip((-gy * half[0] - gx * half[1] + half[2]) / norm, 0.0, 1.0) ** 120
    wet = np.clip(0.6 + 0.8 * _smooth_noise(rng, shape, 4 * unit), 0, None)
    radiance = albedo * (0.3 + 0.8 * diffuse)[..., None] + (260 * spec * wet)[..., None]
    return radiance.astype(np.float32), labels, np.asarray(radii, dtype=np.float64)


def _wave(rng: np.random.Generator, t: np.ndarray, n: int = 3) -> np.ndarray:
    """A smooth random function of t in 0..1 with values in about -1..1 (sum of sinusoids)."""
    freq = rng.uniform(0.2, 0.9, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    amp = rng.uniform(0.5, 1.0, size=n)
    return (amp * np.sin(2 * np.pi * freq * t[:, None] + phase)).sum(1) / amp.sum()


def _camera_path(
    rng: np.random.Generator, n_frames: int, shape: tuple[int, int], margin: float
) -> np.ndarray:
    """[T, 4] (centre y, centre x, scale, roll): a sweep of 2.2-2.8 frame widths along the colon
    (x increasing) at a varying speed, with sway, zoom and roll, all smooth in time."""
    h, w = shape
    t = np.linspace(0.0, 1.0, n_frames)
    travel = rng.uniform(2.2, 2.8) * w
    # Speed varies 10-fold: the endoscopist dwells on some stretches and passes others quickly.
    progress = np.cumsum(np.exp(1.15 * _wave(rng, t))) - 1
    y = margin + 0.12 * h * (1 + _wave(rng, t))
    x = margin + travel * progress / max(progress[-1], 1e-9)
    scale = np.exp(0.15 * _wave(rng, t))
    roll = 0.25 * _wave(rng, t)
    return np.stack([y, x, scale, roll], axis=1)


def _schedule(
    rng: np.random.Generator, n_frames: int
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Degradation name, strength and run index per frame: informative runs of 3-10 frames
    between degraded runs of 2-9; a run's strength rises and falls around a peak in 0.3..1."""
    names = ["none"] * n_frames
    strength = np.zeros(n_frames, dtype=np.float32)
    run = np.zeros(n_frames, dtype=np.int64)
    t, k = int(rng.integers(0, 6)), 0
    while t < n_frames:
        length = int(rng.integers(2, 10))
        kind = DEGRADATIONS[rng.integers(len(DEGRADATIONS))]
        i = np.arange(min(length, n_frames - t))
        strength[t : t + i.size] = rng.uniform(0.3, 1.0) * (
            0.35 + 0.65 * np.sin(np.pi * (i + 0.5) / length))
        names[t : t + i.size] = [kind] * i.size
        k += 1
        run[t : t + i.size] = k
        t += length + int(rng.integers(3, 11))
    return tuple(names), strength, run


def _corners(scene: np.ndarray) -> np.ndarray:
    """Each scene pixel with its right, lower and lower-right neighbours, [(h-1) * (w-1), 4c]:
    one row gather per frame pixel then does a bilinear lookup (4x faster than four gathers)."""
    return np.concatenate([scene[:-1, :-1], scene[:-1, 1:], scene[1:, :-1], scene[1:, 1:]],
                          axis=-1).reshape(-1, 4 * scene.shape[-1])


def _sample(corners: np.ndarray, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray
            ) -> np.ndarray:
    """Bilinear lookup at float coordinates (clamped at the border) of a scene of `shape`, given
    as its `_corners`."""
    h, w = shape[0] - 1, shape[1] - 1
    ys, xs = np.clip(ys, 0, h - 1e-3), np.clip(xs, 0, w - 1e-3)
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = (ys - y0).ravel(), (xs - x0).ravel()
    rows = np.take(corners, (y0.astype(np.intp) * w + x0.astype(np.intp)).ravel(), axis=0)
    c = np.ascontiguousarray(rows.T).reshape(4, -1, fx.size)  # channel-first: long inner loops
    top = c[0] + (c[1] - c[0]) * fx
    bottom = c[2] + (c[3] - c[2]) * fx
    return np.ascontiguousarray((top + (bottom - top) * fy).T).reshape(*ys.shape, -1)


def _disc(radius: float) -> np.ndarray:
    """Normalised disc kernel: the point spread function of an out-of-focus lens."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    k = np.clip(radius + 0.5 - np.sqrt(yy**2 + xx**2), 0, 1)
    return (k / k.sum()).astype(np.float32)


def _bubbles(rng: np.random.Generator, shape: tuple[int, int], strength: float, unit: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Additive brightness [H, W] of bubbles (bright rims, a specular dot) and a fluid cover
    [H, W] in 0..1 (a smooth pool with a wavy surface)."""
    h, w = shape
    # Always draw 28 bubbles and show the first few: a run's bubbles stay put as strength varies.
    n = 2 + int(strength * 26)
    cy, cx, r = (rng.uniform(0, 1, (3, 28)) * [[h], [w], [20 * unit]])[:, :n]
    r += 4 * unit
    yy, xx = np.ogrid[0:h, 0:w]
    add = np.zeros(shape, dtype=np.float32)
    for y, x, rad in zip(cy, cx, r, strict=True):  # a few dozen circles, each in its own box
        sl = (slice(max(0, int(y - rad - 3)), int(y + rad + 4)),
              slice(max(0, int(x - rad - 3)), int(x + rad + 4)))
        d = np.sqrt((yy[sl[0]] - y) ** 2 + (xx[:, sl[1]] - x) ** 2)
        dot = np.sqrt((yy[sl[0]] - y + 0.4 * rad) ** 2 + (xx[:, sl[1]] - x + 0.4 * rad) ** 2)
        add[sl] += 110 * np.exp(-(((d - rad) / 1.5) ** 2)) + 260 * (dot < 0.2 * rad) + 15 * (
            d < rad)
    level = rng.uniform(0.3, 0.9) * h + 0.05 * h * np.sin(xx / (rng.uniform(20, 60) * unit))
    pool = 1.0 / (1.0 + np.exp(-(yy - level) / (4 * unit)))
    return add, (pool * np.clip(1.6 * strength, 0, 1)).astype(np.float32)


def _degrade(
    frame: np.ndarray, kind: str, s: float, rng: np.random.Generator, unit: float
) -> np.ndarray:
    """Degrade a float RGB frame [H, W, 3] (0..255+) as real non-informative frames are:

    motion_blur: mean of shifted copies along one direction, 2-32 px (camera moved in exposure);
    defocus: disc blur of radius 1-9 px (lens too close to or far from the wall);
    over_exposure: gain up to 4x plus an offset, saturating the wall (light too strong or close);
    under_exposure: gain down to 0.05x (light pointing down the lumen) plus fixed-pattern
      sensor noise, as a camera's automatic gain amplifies it;
    wall_contact: a blend towards a featureless, bright, reddish glow (lens touching the wall);
    bubbles: bright-rimmed bubbles with specular dots and a yellow-brown fluid pool over the view.
    `rng` is seeded per run, so a run's blur direction, bubbles and pool stay put.
    """
    if kind == "motion_blur":
        angle = rng.uniform(0, np.pi)
        length = (2 + 30 * s) * unit
        steps = np.linspace(-length / 2, length / 2, 9)
        shifts = np.round(np.stack([np.sin(angle) * steps, np.cos(angle) * steps], 1)).astype(int)
        return np.mean([np.roll(frame, tuple(d), axis=(0, 1)) for d in shifts], axis=0)
    if kind == "defocus":
        return signal.fftconvolve(frame, _disc((1 + 8 * s) * unit)[..., None], mode="same",
                                  axes=(0, 1))
    if kind == "over_exposure":
        return frame * (1 + 3 * s) + 50 * s
    if kind == "under_exposure":
        gain = 1 - 0.95 * s**0.6
        return frame * gain + rng.standard_normal(frame.shape, dtype=np.float32) * 6 * s
    if kind == "wall_contact":
        small = ndimage.gaussian_filter(frame[::8, ::8], (3, 3, 0))
        glow = ndimage.zoom(small, (frame.shape[0] / small.shape[0],
                                    frame.shape[1] / small.shape[1], 1), order=1)
        glow = glow.mean(axis=(0, 1)) * 0.3 + 0.7 * glow
        glow = glow * np.array([1.7, 0.6, 0.45]) + [60, 5, 0]
        return frame * (1 - s) + glow[: frame.shape[0], : frame.shape[1]] * s
    add, pool = _bubbles(rng, frame.shape[:2], s, unit)
    fluid = np.array([rng.uniform(150, 200), rng.uniform(130, 170), rng.uniform(40, 80)])
    frame = frame * (1 - pool[..., None] * 0.8) + pool[..., None] * 0.8 * fluid
    return frame + add[..., None] * min(1.0, 0.4 + s)


def synthetic_video(
    seed: int,
    n_frames: int = 64,
    shape: tuple[int, int] = (288, 384),
    polyps: int | None = None,
    informative_only: bool = False,
) -> Video:
    """A SYNTHETIC colonoscopy video (see the module docstring).

    Args:
      seed: the video is a deterministic function of the seed and the other arguments.
      n_frames: frames T; the camera sweeps the same distance whatever T, so a longer video moves
        more slowly per frame.
      shape: frame (height, width); the default is CVC-ClinicDB's 384 x 288.
      polyps: number of polyps in the scene (each is in view in some frames only); None draws 0
        (40% of videos) or 1-2.
      informative_only: no degraded frames (all "none", strength 0).
    """
    rng = np.random.default_rng([seed, 0xC0105C0])
    h, w = (int(s) for s in shape)
    if h < 32 or w < 32 or n_frames < 1:
        raise ValueError(f"synthetic_video: shape {shape} / n_frames {n_frames} too small")
    unit = min(h, w) / 288
    margin = 0.5 * np.hypot(h, w) * np.exp(0.15) + 8  # the rolled, zoomed view stays inside
    camera = _camera_path(rng, n_frames, (h, w), margin)
    scene_shape = (int(margin * 2 + 0.25 * h) + 2, int(camera[:, 1].max() + margin) + 2)

    if polyps is None:
        polyps = 0 if rng.uniform() < 0.4 else int(rng.integers(1, 3))
    # Polyps sit on the path in its middle 35-65% (by distance), so they enter and leave the view.
    along = camera[0, 1] + rng.uniform(0.35, 0.65, polyps) * (camera[-1, 1] - camera[0, 1])
    specs = []
    for x in np.sort(along):
        pos = np.array([np.interp(x, camera[:, 1], camera[:, 0]), x])
        offset = rng.uniform(-1, 1, 2) * [0.25 * h, 0.15 * w]
        specs.append((pos + offset, rng.uniform(18, 45) * unit))
    scene, labels, radii = _scene(rng, scene_shape, unit, specs)
    corners = _corners(scene)

    mid = np.array([(h - 1) / 2, (w - 1) / 2])
    py, px = (np.mgrid[0:h, 0:w] - mid[:, None, None]).astype(np.float32)
    vignette = 1 - rng.uniform(0.3, 0.55) * (py**2 + px**2) / float((mid**2).sum())
    lumen_radius = float(rng.uniform(0.1, 0.22) * h)
    t = np.linspace(0, 1, n_frames)
    lumen = np.stack([0.35 * h * _wave(rng, t), 0.45 * w * _wave(rng, t)], 1)
    gain = rng.uniform(0.85, 1.1) * np.exp(0.1 * _wave(rng, t))
    noise_sigma = rng.uniform(1.0, 6.0)

    if informative_only:
        names, strength, run = ("none",) * n_frames, np.zeros(n_frames, np.float32), None
    else:
        names, strength, run = _schedule(rng, n_frames)
    # Sensor noise: crops of one noise bank at random offsets, much cheaper than fresh noise.
    bank = rng.standard_normal((h + 32, w + 32, 3), dtype=np.float32) * noise_sigma
    offsets = rng.integers(0, 33, size=(n_frames, 2))

    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    masks = np.empty((n_frames, h, w), dtype=np.uint8)
    for i, (cy, cx, scale, roll) in enumerate(camera.tolist()):
        c, s = math.cos(roll) * scale, math.sin(roll) * scale
        ys, xs = cy + c * py - s * px, cx + s * py + c * px
        masks[i] = labels[np.clip(np.rint(ys).astype(np.int64), 0, scene_shape[0] - 1),
                          np.clip(np.rint(xs).astype(np.int64), 0, scene_shape[1] - 1)]
        d = np.sqrt((py - float(lumen[i, 0])) ** 2 + (px - float(lumen[i, 1])) ** 2)
        dark = 1 - 0.95 / (1 + np.exp((d - lumen_radius) / (0.06 * h)))
        light = float(gain[i]) * vignette * dark * np.clip(0.55 + d / w, 0, 1.1)
        frame = _sample(corners, scene_shape, ys, xs) * light[..., None]
        if names[i] != "none":
            frame = _degrade(frame, names[i], float(strength[i]),
                             np.random.default_rng([seed, int(run[i])]), unit)
        oy, ox = offsets[i]
        frames[i] = np.clip(frame + bank[oy : oy + h, ox : ox + w], 0, 255)

    return Video(
        video_id=f"synthetic-{seed:05d}",
        frames=frames,
        masks=masks,
        informative=strength < INFORMATIVE_BELOW,
        degradation=tuple(names),
        strength=strength,
        camera=camera,
        polyp_centres=np.array([c for c, _ in specs], dtype=np.float64).reshape(-1, 2),
        polyp_radii=radii,
    )


def _grey(frames: np.ndarray) -> np.ndarray:
    return np.asarray(frames, dtype=np.float32).mean(axis=-1)


def laplacian_variance(frames: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of the grey image, per frame ([..., H, W, 3] ->
    [...]): the classic sharpness score, low for blurred or featureless frames."""
    g = _grey(frames)
    lap = (g[..., 1:-1, :-2] + g[..., 1:-1, 2:] + g[..., :-2, 1:-1] + g[..., 2:, 1:-1]
           - 4 * g[..., 1:-1, 1:-1])
    return lap.reshape(*lap.shape[:-2], -1).var(axis=-1)


def exposure_score(frames: np.ndarray, dark: float = 30.0, bright: float = 250.0) -> np.ndarray:
    """Fraction of pixels neither near-black (every channel below `dark`) nor saturated (a channel
    at `bright` or above), per frame ([..., H, W, 3] -> [...]): low for over- and under-exposed
    frames and for the clipped red of wall contact."""
    peak = np.asarray(frames).max(axis=-1)
    ok = (peak >= dark) & (peak < bright)
    return ok.reshape(*ok.shape[:-2], -1).mean(axis=-1)
