"""Vessel-aligned multi-planar patches for PE candidates (Tajbakhsh et al., MICCAI 2015 / TMI 2016).

A PE looks different in a vessel's cross-section (a dark spot in a bright disc) and along it (a
dark run in a bright band), and the vessel can point anywhere. So each candidate is shown in a
frame aligned with the local vessel axis: one image perpendicular to the axis ("across"), one
containing it ("along"). Augmentations are physical widths, shifts along the axis and rotations
about the axis; every sample point is placed in millimetres, so anisotropic voxels are honoured.

Frame convention (all vectors are unit vectors in (z, y, x) millimetre space):
  a = the vessel axis; u = the unit vector orthogonal to a built from the coordinate axis least
  aligned with a (`perpendicular_basis`); v = a x u. Rotation k turns (u, v) about a by
  theta_k = 2 pi k / n_rotations: u_k = cos(theta_k) u + sin(theta_k) v, v_k = a x u_k.
  Across image: row r, column c sample centre + s a + y_r v_k + x_c u_k.
  Along image:  row r, column c sample centre + s a + y_r a + x_c u_k (the axis runs down the rows).
  y_r = (r - (size - 1) / 2) * width / size, likewise x_c: a size x size grid of pixel centres
  covering exactly `width` mm; s = shift_fraction * width mm; with s = 0 the candidate centre
  (converted to mm with the spacing) lies at the middle of the grid.

Patch order within a candidate: index = (i_width * n_shifts + i_shift) * n_rotations + i_rotation
(widths outermost, rotations innermost): with the defaults, patches 0..5 are width 10 mm, shift
-0.2 x 10 mm, rotations 0, 60, ..., 300 degrees; patch 53 is width 20 mm, shift +4 mm, 300 degrees.
Channels: [across, along, along] (the paper's [ch1, ch2, ch2]).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ftjax.apps.pe.ct import perpendicular_basis
from ftjax.apps.pe.toboggan import Candidates

_PAD_HU = -1000.0


def _principal_axis(points_mm: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, float]:
    """Principal axis of voxels given by their centres in mm, and the ratio of the two largest
    eigenvalues. Each voxel counts as a uniform box (variance s^2 / 12 per axis), so a cluster of
    one or two voxels still has a well-defined, spacing-aware covariance."""
    centred = points_mm - points_mm.mean(axis=0)
    cov = centred.T @ centred / len(points_mm) + np.diag(spacing**2 / 12.0)
    evals, evecs = np.linalg.eigh(cov)
    return evecs[:, -1], float(evals[-1] / max(evals[-2], 1e-12))


def _canonical_sign(a: np.ndarray) -> np.ndarray:
    """Axis directions are sign-free; fix the largest component positive for reproducibility."""
    return a if a[np.argmax(np.abs(a))] > 0 else -a


def vessel_axes(
    candidates: Candidates,
    spacing: Sequence[float],
    lumen: np.ndarray | None = None,
    min_voxels: int = 6,
    min_ratio: float = 2.0,
    radii_mm: Sequence[float] = (5.0, 8.0, 12.0),
) -> np.ndarray:
    """Local vessel axis per candidate: float64 [N, 3] unit vectors in (z, y, x) mm space.

    The principal axis (PCA in mm) of the candidate's voxels, when it has at least `min_voxels`
    voxels and its largest covariance eigenvalue is at least `min_ratio` times the second (it is
    elongated). Otherwise the principal axis of the `lumen` voxels within a sphere around the
    candidate centre, trying each radius in `radii_mm` until one is elongated enough; if none is,
    the most elongated estimate is used. With `lumen=None` only the cluster is used.
    """
    spacing_arr = np.asarray(spacing, dtype=np.float64)
    out = np.zeros((len(candidates), 3))
    for i in range(len(candidates)):
        vox = candidates.voxels(i)
        cluster = _principal_axis(vox * spacing_arr, spacing_arr)
        if len(vox) >= min_voxels and cluster[1] >= min_ratio:
            axis = cluster[0]
        else:
            local = [] if lumen is None else _lumen_axes(
                lumen, spacing_arr, candidates.centres[i], radii_mm, min_ratio
            )
            good = [e for e in local if e[1] >= min_ratio]
            pool = local + ([cluster] if len(vox) >= min_voxels or not local else [])
            axis = good[0][0] if good else max(pool, key=lambda e: e[1])[0]
        out[i] = _canonical_sign(axis / np.linalg.norm(axis))
    return out


def _lumen_axes(
    lumen: np.ndarray,
    spacing: np.ndarray,
    centre_vox: np.ndarray,
    radii_mm: Sequence[float],
    min_ratio: float,
) -> list[tuple[np.ndarray, float]]:
    """PCA of lumen voxels in growing spheres around a centre, stopping at the first elongated."""
    estimates = []
    for radius in radii_mm:
        half = np.ceil(radius / spacing).astype(int)
        lo = np.maximum(np.floor(centre_vox).astype(int) - half, 0)
        hi = np.minimum(np.ceil(centre_vox).astype(int) + half + 1, lumen.shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        vox = np.argwhere(lumen[box]) + lo
        d = (vox - centre_vox) * spacing
        vox = vox[np.sum(d * d, axis=1) <= radius**2]
        if len(vox) >= 3:
            estimates.append(_principal_axis(vox * spacing, spacing))
            if estimates[-1][1] >= min_ratio:
                break
    return estimates


@partial(jax.jit, static_argnames=("size",))
def _extract(
    hu: jax.Array,
    spacing: jax.Array,
    centres: jax.Array,
    frames: jax.Array,
    widths: jax.Array,
    shifts: jax.Array,
    angles: jax.Array,
    window: jax.Array,
    size: int,
) -> jax.Array:
    """uint8 [N, K, size, size, 3] for centres [N, 3] (voxels) and frames [N, 3 (a, u, v), 3];
    widths / shifts (mm) / angles [K] list the K augmentations."""
    grid = (jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0) / size

    def sample(centre: jax.Array, frame: jax.Array, width, shift, angle) -> jax.Array:
        a, u, v = frame
        u_k = jnp.cos(angle) * u + jnp.sin(angle) * v
        v_k = jnp.cross(a, u_k)
        g = grid * width
        origin = shift * a
        across = origin + g[:, None, None] * v_k + g[None, :, None] * u_k
        along = origin + g[:, None, None] * a + g[None, :, None] * u_k
        vox = centre + jnp.stack([across, along]) / spacing  # [2, size, size, 3]
        coords = [vox[..., 0], vox[..., 1], vox[..., 2]]
        return jax.scipy.ndimage.map_coordinates(hu, coords, order=1, mode="constant",
                                                 cval=_PAD_HU)

    per_candidate = jax.vmap(sample, in_axes=(None, None, 0, 0, 0))
    values = jax.vmap(per_candidate, in_axes=(0, 0, None, None, None))(
        centres, frames, widths, shifts, angles
    )  # [N, K, 2, size, size]
    scaled = jnp.clip((values - window[0]) / (window[1] - window[0]), 0.0, 1.0) * 255.0
    img = jnp.round(scaled).astype(jnp.uint8)
    return jnp.stack([img[:, :, 0], img[:, :, 1], img[:, :, 1]], axis=-1)


def vessel_patches(
    hu: np.ndarray,
    spacing: Sequence[float],
    centres: np.ndarray,
    axes: np.ndarray,
    widths_mm: Sequence[float] = (10.0, 15.0, 20.0),
    shift_fractions: Sequence[float] = (-0.2, 0.0, 0.2),
    n_rotations: int = 6,
    size: int = 32,
    hu_window: tuple[float, float] = (-1000.0, 1000.0),
    batch: int = 16,
) -> np.ndarray:
    """Vessel-aligned patches: uint8 [N, len(widths) * len(shifts) * n_rotations, size, size, 3].

    `centres` [N, 3] are voxel coordinates (z, y, x) (float, e.g. `Candidates.centres`); `axes`
    [N, 3] vessel directions in (z, y, x) mm space (e.g. from `vessel_axes`; normalised here).
    A shift fraction f moves the plane centre by f * width mm along the axis. Sampling is
    trilinear in mm; points outside the volume read -1000 HU (air), never a clamped edge voxel.
    HU are mapped linearly from `hu_window` to 0..255. Patch order and frame: module docstring.
    Candidates are processed `batch` at a time (padded, so each volume shape compiles once).
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"vessel_patches: hu must be 3-D (z, y, x), got shape {hu.shape}")
    spacing_arr = np.asarray(spacing, dtype=np.float32)
    if spacing_arr.shape != (3,) or not np.all(spacing_arr > 0):
        raise ValueError(f"vessel_patches: spacing must be 3 positive mm values, got {spacing!r}")
    centres = np.asarray(centres, dtype=np.float32).reshape(-1, 3)
    axes = np.asarray(axes, dtype=np.float64).reshape(-1, 3)
    if len(centres) != len(axes):
        raise ValueError(f"vessel_patches: {len(centres)} centres but {len(axes)} axes")
    norms = np.linalg.norm(axes, axis=1, keepdims=True)
    if not (np.isfinite(centres).all() and np.isfinite(axes).all() and np.all(norms > 0)):
        raise ValueError("vessel_patches: centres and axes must be finite, axes non-zero")
    if size < 2 or n_rotations < 1 or min(widths_mm) <= 0 or hu_window[1] <= hu_window[0]:
        raise ValueError(
            f"vessel_patches: need size >= 2, n_rotations >= 1, widths > 0 and window low < high "
            f"(got {size}, {n_rotations}, {widths_mm}, {hu_window})"
        )
    w, f, r = np.meshgrid(
        np.asarray(widths_mm, dtype=np.float32),
        np.asarray(shift_fractions, dtype=np.float32),
        np.arange(n_rotations, dtype=np.float32),
        indexing="ij",
    )
    widths, shifts, angles = w.ravel(), (f * w).ravel(), (2.0 * np.pi / n_rotations) * r.ravel()
    n, k = len(centres), widths.size
    out = np.zeros((n, k, size, size, 3), dtype=np.uint8)
    if n == 0:
        return out
    axes = axes / norms
    u, v = perpendicular_basis(axes)
    frames = np.stack([axes, u, v], axis=1).astype(np.float32)
    hu_dev = jnp.asarray(hu, dtype=jnp.float32)
    window = jnp.asarray(hu_window, dtype=jnp.float32)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        pad = batch - (stop - start)
        c = np.concatenate([centres[start:stop], np.repeat(centres[:1], pad, axis=0)])
        fr = np.concatenate([frames[start:stop], np.repeat(frames[:1], pad, axis=0)])
        res = _extract(hu_dev, jnp.asarray(spacing_arr), c, fr, widths, shifts, angles, window,
                       size=size)
        out[start:stop] = np.asarray(res)[: stop - start]
    return out
