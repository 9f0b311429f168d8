"""SYNTHETIC CT pulmonary angiography (CTPA) volumes with pulmonary emboli, generated from a seed.

These volumes are made up. They exist so that the PE pipeline (candidates, vessel-aligned patches,
training, FROC) runs end to end without private data and so that tests have exact ground truth.
They are not a model of any patient and nothing measured on them is a medical finding; every
`CTScan` they produce has `source="synthetic"`.

What a volume contains (all intensities in Hounsfield units, geometry in millimetres):
  - air (-1000) around a soft-tissue body (~40 HU) with a subcutaneous fat rim (~-100 HU), a
    vertebral body (bone) and a contrast-filled descending aorta;
  - two lungs (~-850 HU, with a posterior density gradient and low-frequency texture);
  - a branching pulmonary artery tree of tapering tubes filled with contrast (level 200-450 HU,
    drawn per scan, with a small head-foot gradient), and a pulmonary vein tree that is less
    opacified (80-160 HU);
  - emboli as filling defects (20-90 HU) inside arteries: partial (an ellipsoid in the lumen,
    from near the axis to against the wall, elongated along the vessel) and occlusive (filling
    the lumen over a length), each with its own instance label; some scans have none;
  - PE mimics: partial volume at vessel walls and bifurcations (every shape is rendered with
    anti-aliased edges, i.e. the fraction of each voxel it covers), lymph nodes (soft tissue) on
    the outside of proximal arteries, streak artefacts radiating from dense contrast in the
    superior vena cava;
  - CT-like noise (Gaussian, spatially correlated by a small blur).

Each tube is rendered only inside its bounding box with vectorised numpy, so the default volume
(64 x 128 x 128 voxels at 3 x 2 x 2 mm, a 192 x 256 x 256 mm field of view) takes about 0.25 s
on one CPU core. Anatomy positions scale with the field of view; vessel radii are
physical (mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ftjax.apps.pe.ct import CTScan, perpendicular_basis

_AIR_HU = -1000.0


@dataclass(frozen=True)
class SyntheticTruth:
    """What the generator drew, for tests and diagnostics (SYNTHETIC).

    artery / vein: fraction of each voxel covered by contrast-filled artery / vein lumen.
    clot: fraction of each voxel covered by an embolus (the labels are where it is >= 0.5).
    clot_kinds: "partial" or "occlusive" for clot label i + 1.
    artery_hu / vein_hu: contrast levels of this scan (artery level at mid-volume height).
    """

    artery: np.ndarray
    vein: np.ndarray
    clot: np.ndarray
    clot_kinds: tuple[str, ...]
    artery_hu: float
    vein_hu: float


@dataclass(frozen=True)
class _Tube:
    """A tapering capsule from p0 (radius r0) to p1 (radius r1), points in mm (z, y, x)."""

    p0: np.ndarray
    p1: np.ndarray
    r0: float
    r1: float
    depth: int

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.p1 - self.p0))

    @property
    def direction(self) -> np.ndarray:
        return (self.p1 - self.p0) / self.length


class _Grid:
    """Voxel-centre coordinates (mm) of a volume, and box crops of it."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]):
        self.shape = shape
        self.spacing = np.asarray(spacing, dtype=np.float64)

    def box(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index slices covering [lo_mm, hi_mm], or None when the box misses the volume."""
        lo = np.maximum(np.floor(np.asarray(lo_mm) / self.spacing).astype(int), 0)
        hi = np.minimum(np.ceil(np.asarray(hi_mm) / self.spacing).astype(int) + 1, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore

    def coords(self, box: tuple[slice, slice, slice]) -> list[np.ndarray]:
        """Open-grid mm coordinates (z, y, x) of the voxel centres of `box` (broadcastable)."""
        out = []
        for axis, sl in enumerate(box):
            c = np.arange(sl.start, sl.stop, dtype=np.float64) * self.spacing[axis]
            shape = [1, 1, 1]
            shape[axis] = c.size
            out.append(c.reshape(shape))
        return out


def _coverage(sd: np.ndarray, normal: list[np.ndarray], spacing: np.ndarray) -> np.ndarray:
    """Fraction of each voxel inside a shape, from its signed distance (mm, negative inside).

    Box-filter anti-aliasing: across a locally flat boundary with unit normal n, a voxel of size
    (sz, sy, sx) spans |n . e_i| s_i summed over the axes, so the covered fraction goes linearly
    from 1 to 0 over that width. This is what makes partial volume at walls and bifurcations.
    """
    norm = np.sqrt(sum(n * n for n in normal))
    width = sum(np.abs(n) * s for n, s in zip(normal, spacing, strict=True))
    width = np.where(norm > 1e-9, width / np.maximum(norm, 1e-9), spacing.min())
    return np.clip(0.5 - sd / width, 0.0, 1.0)


def _tube_fraction(
    grid: _Grid, tube: _Tube
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Voxel coverage of one tube inside its bounding box (None when the box misses the volume)."""
    margin = max(tube.r0, tube.r1) + grid.spacing.max()
    box = grid.box(np.minimum(tube.p0, tube.p1) - margin, np.maximum(tube.p0, tube.p1) + margin)
    if box is None:
        return None
    d = [c - p for c, p in zip(grid.coords(box), tube.p0, strict=True)]
    a = tube.direction
    s = d[0] * a[0] + d[1] * a[1] + d[2] * a[2]
    t = np.clip(s / tube.length, 0.0, 1.0)
    radial = [di - t * tube.length * ai for di, ai in zip(d, a, strict=True)]
    dist = np.sqrt(radial[0] ** 2 + radial[1] ** 2 + radial[2] ** 2)
    sd = dist - (tube.r0 + (tube.r1 - tube.r0) * t)
    return box, _coverage(sd, radial, grid.spacing)


def _ellipsoid_fraction(
    grid: _Grid, centre: np.ndarray, axes: np.ndarray, semi: np.ndarray
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Voxel coverage of an ellipsoid with orthonormal `axes` (rows, mm) and semi-axes `semi`."""
    reach = semi.max() + grid.spacing.max()
    box = grid.box(centre - reach, centre + reach)
    if box is None:
        return None
    d = [c - p for c, p in zip(grid.coords(box), centre, strict=True)]
    local = [d[0] * ax[0] + d[1] * ax[1] + d[2] * ax[2] for ax in axes]
    rho = np.sqrt(sum((u / s) ** 2 for u, s in zip(local, semi, strict=True)))
    grad_local = [u / s**2 for u, s in zip(local, semi, strict=True)]
    grad = [sum(g * ax[i] for g, ax in zip(grad_local, axes, strict=True)) for i in range(3)]
    grad_norm = np.sqrt(sum(g * g for g in grad))
    # First-order signed distance (rho - 1) / |grad rho|, with grad rho = grad(rho^2) / (2 rho).
    sd = (rho - 1.0) * rho / np.maximum(grad_norm, 1e-9)
    return box, _coverage(sd, grad, grid.spacing)


def _random_perpendicular(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A unit vector orthogonal to unit vector `a`, at a uniformly random angle about it."""
    u, v = perpendicular_basis(a[None])
    phi = rng.uniform(0, 2 * np.pi)
    return np.cos(phi) * u[0] + np.sin(phi) * v[0]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class _Anatomy:
    """Positions of the organs, as fractions of the field of view (SYNTHETIC, schematic)."""

    def __init__(self, extent: np.ndarray, rng: np.random.Generator):
        self.extent = extent
        ez, ey, ex = extent
        self.centre = extent / 2.0
        cz, cy, cx = self.centre
        jitter = 1.0 + 0.04 * rng.uniform(-1, 1, size=3)
        self.body_semi = np.array([0.40 * ey, 0.46 * ex]) * jitter[1:]
        # Lungs: index 0 = patient right (low x in LPS), 1 = left.
        self.lung_centres = [
            np.array([0.5 * ez, cy + 0.02 * ey, cx + s * 0.23 * ex]) for s in (-1, 1)
        ]
        self.lung_semi = np.array([0.44 * ez, 0.29 * ey, 0.175 * ex]) * jitter
        self.hila = [np.array([0.55 * ez, cy + 0.02 * ey, cx + s * 0.13 * ex]) for s in (-1, 1)]

    def lung_radius(self, side: int, p: np.ndarray) -> float:
        """Normalised ellipsoid radius of point p in lung `side` (<1 inside)."""
        return float(np.linalg.norm((p - self.lung_centres[side]) / self.lung_semi))


def _grow_tree(
    rng: np.random.Generator,
    anatomy: _Anatomy,
    roots: list[tuple[np.ndarray, np.ndarray, float, int]],
    r_min: float,
    max_segments: int,
) -> list[_Tube]:
    """Grow tapering, bifurcating tubes from (start, direction, radius, lung side) roots.

    Each segment is 3.5-6 radii long and tapers by 2-7%; it splits into two children with radius
    ratios 0.78-0.9 and 0.6-0.8 (around Murray's law, 0.79 for a symmetric split) at 15-60
    degrees from the parent. A child that would leave its lung is steered towards the lung
    centre, else dropped.
    """
    tubes: list[_Tube] = []
    stack = [(p, _unit(d), r, side, 1) for p, d, r, side in roots]
    while stack and len(tubes) < max_segments:
        start, direction, radius, side, depth = stack.pop(0)
        length = max(radius * rng.uniform(3.5, 6.0), 3.0 * r_min)
        end = None
        to_centre = _unit(anatomy.lung_centres[side] - start)
        for pull in (0.0, 0.5, 1.0, 2.0, 4.0):
            d = _unit(direction + pull * to_centre)
            if anatomy.lung_radius(side, start + d * length) < 0.92:
                end, direction = start + d * length, d
                break
        if end is None:
            continue
        r_end = radius * rng.uniform(0.93, 0.98)
        tubes.append(_Tube(start, end, radius, r_end, depth))
        plane = _random_perpendicular(direction, rng)
        ratios = (rng.uniform(0.78, 0.9), rng.uniform(0.6, 0.8))
        angles = (np.radians(rng.uniform(15, 35)), -np.radians(rng.uniform(30, 60)))
        for ratio, angle in zip(ratios, angles, strict=True):
            r_child = r_end * ratio
            if r_child >= r_min:
                child = np.cos(angle) * direction + np.sin(angle) * plane
                stack.append((end, child, r_child, side, depth + 1))
    return tubes


def _artery_roots(anatomy: _Anatomy, rng: np.random.Generator) -> tuple[list[_Tube], list]:
    """Main, right and left pulmonary arteries (mediastinal tubes) and lobar roots at the hila."""
    ez, ey, ex = anatomy.extent
    cz, cy, cx = anatomy.centre
    trunk_start = np.array([0.47 * ez, cy - 0.22 * ey, cx + 0.03 * ex])
    bifurcation = np.array([0.56 * ez, cy - 0.06 * ey, cx + 0.02 * ex])
    r_trunk = rng.uniform(11.0, 14.0)
    tubes = [_Tube(trunk_start, bifurcation, r_trunk, r_trunk * 0.92, 0)]
    roots = []
    lobes = {  # lung side -> (direction, radius factor) of the lobar arteries
        0: [((1.0, -0.2, -0.6), 0.75), ((-0.3, -0.8, -0.6), 0.6), ((-1.0, 0.4, -0.4), 0.8)],
        1: [((1.0, -0.1, 0.6), 0.75), ((-1.0, 0.4, 0.4), 0.8)],
    }
    for side in (0, 1):
        r_pa = r_trunk * rng.uniform(0.72, 0.8)
        tubes.append(_Tube(bifurcation, anatomy.hila[side], r_pa, r_pa * 0.9, 0))
        for direction, factor in lobes[side]:
            d = np.asarray(direction) + 0.25 * rng.normal(size=3)
            roots.append((anatomy.hila[side], d, r_pa * 0.9 * factor, side))
    return tubes, roots


def _vein_roots(anatomy: _Anatomy, rng: np.random.Generator) -> tuple[list[_Tube], list]:
    """Four pulmonary veins from a left-atrium point, and their roots in the lungs."""
    ez, ey, ex = anatomy.extent
    cz, cy, cx = anatomy.centre
    atrium = np.array([0.42 * ez, cy + 0.1 * ey, cx + 0.02 * ex])
    tubes, roots = [], []
    for side, sign in ((0, -1), (1, 1)):
        for dz in (0.06, -0.08):
            entry = np.array([(0.42 + dz) * ez, cy + 0.08 * ey, cx + sign * 0.14 * ex])
            r = rng.uniform(5.5, 7.5)
            tubes.append(_Tube(atrium, entry, r, r * 0.95, 0))
            d = np.array([np.sign(dz), 0.3, sign * 0.8]) + 0.25 * rng.normal(size=3)
            roots.append((entry, d, r * 0.9, side))
    return tubes, roots


def _render_union(grid: _Grid, tubes: list[_Tube]) -> np.ndarray:
    """Union (voxel-wise max) of the coverage of many tubes."""
    frac = np.zeros(grid.shape, dtype=np.float32)
    for tube in tubes:
        rendered = _tube_fraction(grid, tube)
        if rendered is not None:
            box, cov = rendered
            np.maximum(frac[box], cov, out=frac[box])
    return frac


def _background(grid: _Grid, anatomy: _Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Air, body with fat rim, spine, lungs with texture (no vessels yet)."""
    z, y, x = grid.coords(tuple(slice(0, n) for n in grid.shape))  # type: ignore[arg-type]
    cz, cy, cx = anatomy.centre
    sy, sx = anatomy.body_semi
    rho = np.sqrt(((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2)
    body = np.clip(0.5 - (rho - 1.0) * min(sy, sx) / grid.spacing[1:].mean(), 0, 1)
    fat = np.clip(0.5 - (rho - 0.9) * min(sy, sx) / grid.spacing[1:].mean(), 0, 1)
    hu = _AIR_HU + body * (-100.0 - _AIR_HU) + fat * (40.0 - -100.0)
    hu = np.broadcast_to(hu, grid.shape).astype(np.float32)

    spine_c = np.array([cy + 0.30 * anatomy.extent[1], cx])
    r_spine = 0.07 * anatomy.extent[2]
    d_spine = np.sqrt((y - spine_c[0]) ** 2 + (x - spine_c[1]) ** 2) - r_spine
    spine = _coverage(d_spine, [np.zeros(1), y - spine_c[0], x - spine_c[1]], grid.spacing)
    hu = hu + spine * (rng.uniform(300, 450) - hu)

    coarse = ndimage.zoom(rng.normal(size=(6, 10, 10)), np.array(grid.shape) / (6, 10, 10), order=1)
    lung_hu = -860.0 + 60.0 * (y - cy) / anatomy.extent[1] + 25.0 * coarse
    for side in (0, 1):
        rendered = _ellipsoid_fraction(grid, anatomy.lung_centres[side], np.eye(3),
                                       anatomy.lung_semi)
        if rendered is not None:
            box, cov = rendered
            hu[box] += cov * (lung_hu[box] - hu[box])
    return hu


def _streaks(
    grid: _Grid, centre_yx: np.ndarray, z_range: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Bright and dark streaks radiating from a dense-contrast vessel (beam hardening / photon
    starvation), as thin lines through it in every slice of its z range, fading with distance."""
    z, y, x = grid.coords(tuple(slice(0, n) for n in grid.shape))  # type: ignore[arg-type]
    dy, dx = y - centre_yx[0], x - centre_yx[1]
    r = np.sqrt(dy**2 + dx**2)
    pattern = np.zeros(r.shape)
    for _ in range(rng.integers(6, 14)):
        theta = rng.uniform(0, np.pi)
        d_perp = np.abs(-np.sin(theta) * dx + np.cos(theta) * dy)
        pattern += rng.choice([-1.0, 1.0]) * rng.uniform(40, 140) * np.exp(-((d_perp / 1.2) ** 2))
    pattern *= np.exp(-r / 70.0)
    z_weight = np.clip(1.0 - np.maximum(z_range[0] - z, z - z_range[1]) / 10.0, 0.0, 1.0)
    return (pattern * z_weight).astype(np.float32)


def _place_clots(
    grid: _Grid,
    tubes: list[_Tube],
    n_clots: int,
    r_min_clot: float,
    rng: np.random.Generator,
) -> list[tuple[str, tuple[slice, slice, slice], np.ndarray]]:
    """Draw non-overlapping emboli inside artery segments; returns (kind, box, coverage).

    Partial: an ellipsoid 1.5-3x longer along the vessel than across (semi-axis 0.35-0.6 of the
    vessel radius, at least 0.9 in-plane voxels), centred between near the axis and against the
    wall, clipped to the lumen. Occlusive (vessels of radius <= 8 mm): the whole lumen over
    6-12 mm, at least 1.5 radii from the segment ends so that contrast resumes distally.
    A clot must cover at least one voxel by half, or it is redrawn.
    """
    eligible = [t for t in tubes if min(t.r0, t.r1) >= r_min_clot and t.length > 2.0 * t.r0]
    clots: list[tuple[str, tuple[slice, slice, slice], np.ndarray]] = []
    placed: list[tuple[np.ndarray, float]] = []
    tries = 0
    while eligible and len(clots) < n_clots and tries < 50 * max(n_clots, 1):
        tries += 1
        tube = eligible[rng.integers(len(eligible))]
        a = tube.direction
        occlusive = tube.r0 <= 8.0 and rng.uniform() < 0.35
        half = rng.uniform(3.0, 6.0) if occlusive else 0.0
        margin = half + 1.5 * tube.r0  # contrast resumes distal to an occlusive clot
        if occlusive and tube.length < 2 * margin:
            continue
        lo = margin / tube.length
        t0 = rng.uniform(min(lo, 0.5), max(1 - lo, 0.5))
        radius = tube.r0 + (tube.r1 - tube.r0) * t0
        on_axis = tube.p0 + t0 * tube.length * a
        e = _random_perpendicular(a, rng)
        if occlusive:
            centre, extent = on_axis, half + radius
        else:
            b = radius * rng.uniform(0.35, 0.6)
            b = min(max(b, 0.9 * grid.spacing[1:].max()), 0.7 * radius)
            semi = np.array([b * rng.uniform(1.5, 3.0), b, b])
            centre = on_axis + e * (radius - b) * rng.uniform(0.3, 1.0)
            extent = semi.max()
        if any(np.linalg.norm(centre - c) < extent + r + 2.0 for c, r in placed):
            continue
        rendered = _tube_fraction(grid, tube)
        if rendered is None:
            continue
        box, lumen = rendered
        if occlusive:
            d = [c - p for c, p in zip(grid.coords(box), on_axis, strict=True)]
            s = d[0] * a[0] + d[1] * a[1] + d[2] * a[2]
            axial = [s * ai for ai in a]
            cov = np.minimum(lumen, _coverage(np.abs(s) - half, axial, grid.spacing))
        else:
            ell = _ellipsoid_fraction(grid, centre, np.stack([a, e, np.cross(a, e)]), semi)
            if ell is None:
                continue
            ebox, ecov = ell
            cov = np.zeros_like(lumen)
            # Place the ellipsoid coverage into the tube's box (the ellipsoid lies inside it).
            inner = tuple(
                slice(max(eb.start, tb.start) - tb.start, min(eb.stop, tb.stop) - tb.start)
                for eb, tb in zip(ebox, box, strict=True)
            )
            outer = tuple(
                slice(max(eb.start, tb.start) - eb.start, min(eb.stop, tb.stop) - eb.start)
                for eb, tb in zip(ebox, box, strict=True)
            )
            cov[inner] = ecov[outer]
            cov = np.minimum(lumen, cov)
        if np.count_nonzero(cov >= 0.5) == 0:
            continue
        clots.append(("occlusive" if occlusive else "partial", box, cov.astype(np.float32)))
        placed.append((centre, extent))
    return clots


def synthetic_scan_with_truth(
    seed: int,
    shape: tuple[int, int, int] = (64, 128, 128),
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    n_clots: int | None = None,
    noise_hu: float | None = None,
    streaks: bool | None = None,
) -> tuple[CTScan, SyntheticTruth]:
    """A SYNTHETIC CTPA scan and what was drawn in it (see the module docstring).

    Args:
      seed: the scan is a deterministic function of the seed and the other arguments.
      shape: volume shape (z, y, x); the field of view is shape * spacing mm.
      spacing: (z, y, x) voxel size in mm (anisotropic is fine, e.g. (1.5, 0.8, 0.8)).
      n_clots: number of emboli; None draws 0 (20% of scans) or 1-5. Fewer may be placed when
        the artery tree has too few segments wide enough: radius >= max(2.5 mm, 2 voxels along
        the coarsest axis), since a clot in a thinner vessel drowns in partial volume.
      noise_hu: noise standard deviation in HU; None draws 12-30 HU.
      streaks: dense-contrast streak artefacts; None draws them in 70% of scans.
    """
    rng = np.random.default_rng([seed, 0x9E3779B9])
    grid = _Grid(tuple(int(n) for n in shape), spacing)  # type: ignore[arg-type]
    if min(grid.shape) < 8:
        raise ValueError(f"synthetic_scan: shape {shape} too small (need >= 8 voxels per axis)")
    extent = np.asarray(grid.shape) * grid.spacing
    anatomy = _Anatomy(extent, rng)
    hu = _background(grid, anatomy, rng)

    r_min = max(1.0, 0.6 * grid.spacing[1:].min())
    a_tubes, a_roots = _artery_roots(anatomy, rng)
    a_tubes += _grow_tree(rng, anatomy, a_roots, r_min, max_segments=700)
    v_tubes, v_roots = _vein_roots(anatomy, rng)
    v_tubes += _grow_tree(rng, anatomy, v_roots, r_min * 1.2, max_segments=500)
    aorta = _Tube(np.array([-5.0, extent[1] * 0.7, extent[2] * 0.55]),
                  np.array([extent[0] + 5.0, extent[1] * 0.7, extent[2] * 0.55]), 11.0, 11.0, 0)

    artery_hu = rng.uniform(200.0, 450.0)
    vein_hu = rng.uniform(80.0, 160.0)
    z_mm = grid.coords(tuple(slice(0, n) for n in grid.shape))[0]  # type: ignore[arg-type]
    artery_level = artery_hu * (1.0 + rng.uniform(-0.08, 0.08) * (z_mm / extent[0] - 0.5))

    vein = _render_union(grid, v_tubes)
    hu += vein * (vein_hu - hu)
    aorta_frac = _render_union(grid, [aorta])
    hu += aorta_frac * (artery_hu * rng.uniform(0.6, 0.9) - hu)

    # Lymph nodes: soft-tissue ellipsoids touching the outside of proximal arteries.
    proximal = [t for t in a_tubes if t.depth <= 2 and t.r0 >= 3.0]
    for _ in range(rng.integers(2, 7) if proximal else 0):
        tube = proximal[rng.integers(len(proximal))]
        a = tube.direction
        e = _random_perpendicular(a, rng)
        rn = rng.uniform(3.0, 6.0)
        r_here = 0.5 * (tube.r0 + tube.r1)
        centre = tube.p0 + rng.uniform(0.2, 0.8) * (tube.p1 - tube.p0) + e * (r_here + 0.8 * rn)
        rendered = _ellipsoid_fraction(
            grid, centre, np.stack([a, e, np.cross(a, e)]), np.array([1.4 * rn, rn, rn])
        )
        if rendered is not None:
            box, cov = rendered
            hu[box] += cov * (rng.uniform(35.0, 70.0) - hu[box])

    artery = _render_union(grid, a_tubes)
    hu += artery * (artery_level - hu)

    if n_clots is None:
        n_clots = 0 if rng.uniform() < 0.2 else int(rng.integers(1, 6))
    clots = np.zeros(grid.shape, dtype=np.int32)
    clot_frac = np.zeros(grid.shape, dtype=np.float32)
    kinds = []
    r_min_clot = max(2.5, 2.0 * grid.spacing.max())
    for label, (kind, box, cov) in enumerate(
        _place_clots(grid, a_tubes, n_clots, r_min_clot, rng), start=1
    ):
        hu[box] += cov * (rng.uniform(20.0, 90.0) - artery_level[box[0]])
        clots[box][cov >= 0.5] = label
        np.maximum(clot_frac[box], cov, out=clot_frac[box])
        kinds.append(kind)

    if rng.uniform() < 0.7 if streaks is None else streaks:
        svc_yx = anatomy.centre[1:] - np.array([0.08, 0.05]) * extent[1:]
        z_lo = 0.6 * extent[0]
        svc = _Tube(np.array([z_lo, *svc_yx]), np.array([extent[0] + 5.0, *svc_yx]), 8.0, 8.0, 0)
        svc_frac = _render_union(grid, [svc])
        hu += svc_frac * (rng.uniform(1200.0, 2500.0) - hu)
        hu += _streaks(grid, svc_yx, (z_lo, extent[0]), rng) * (1.0 - svc_frac)

    sigma = rng.uniform(12.0, 30.0) if noise_hu is None else float(noise_hu)
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, (0.3, 0.7, 0.7))
    hu += noise * (sigma / max(float(noise.std()), 1e-6))
    hu = np.clip(hu, -1024.0, 3071.0).astype(np.float32)

    scan = CTScan(f"synthetic-{seed:05d}", hu, tuple(grid.spacing), clots, "synthetic")
    truth = SyntheticTruth(artery, vein, clot_frac, tuple(kinds), float(artery_hu), float(vein_hu))
    return scan, truth


def synthetic_scan(
    seed: int,
    shape: tuple[int, int, int] = (64, 128, 128),
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    n_clots: int | None = None,
    noise_hu: float | None = None,
    streaks: bool | None = None,
) -> CTScan:
    """A SYNTHETIC CTPA scan (`source="synthetic"`); arguments as `synthetic_scan_with_truth`."""
    return synthetic_scan_with_truth(seed, shape, spacing, n_clots, noise_hu, streaks)[0]
