"""2-D patches cut on the device: candidate patches (polyp) and random crops (frames).

Pixel convention: pixel (i, j) of a frame [H, W, ch] has its centre at (y, x) = (i, j); candidate
centres are (y, x) in the same pixel units (float, sub-pixel allowed).

Candidate patches (Tajbakhsh et al. TMI 2016, polyp detection): each candidate's bounding box
(h, w) is enlarged by a scale s and cropped as a square of side L = max(h, w) * s (the enlarged
box's larger side, so patches stay square and the box is never cut), resampled to
patch_size x patch_size. Row r, column c of a patch samples
  y = cy + dy * shift * L + (r - (p - 1) / 2) * L / p,
  x = cx + dx * shift * L + (c - (p - 1) / 2) * L / p
(p = patch_size): p pixel centres covering exactly L pixels, symmetric about the patch centre.
(dy, dx) is one of POSITIONS: the centre, then up, down, left, right by shift * L. Sampling is
bilinear on the frame extended by `fill` outside it: a point more than one pixel outside reads
`fill` exactly, one within a pixel of the edge blends the edge pixel with `fill`; never a clamped
or shifted patch. The 8 dihedral variants of each (scale, position) patch are exact array
permutations of it (the grid is symmetric): variant v = 2 * k + f is np.rot90(patch, k)
(counter-clockwise as displayed), then flipped left-right if f = 1.

Patch order within a candidate: index = (i_scale * 5 + i_position) * 8 + i_variant (scales
outermost, variants innermost; `augmentation_index`, `augmentation_grid`). With the defaults
K = 3 * 5 * 8 = 120: patches 0..7 are scale 1.0, centred, the 8 variants; patch 8 is scale 1.0
shifted up by 10% of the side; patch 119 is scale 1.5, shifted right, rotated 270 degrees, flipped.

Random crops (frame classification): size x size windows at integer top-left offsets, no
resampling, cut with `lax.dynamic_slice` from the frame padded by `size` on every side (a
dynamic_slice clamps out-of-range starts, so unpadded edge crops would silently shift);
`frame_crops` cuts them from a stack of frames kept on the device, so a data set stores each
frame once, not its crops.

Compilation: `candidate_patches` compiles once per (C, H, W, ch, len(scales), patch_size) and
`frame_crops` once per (F, N, H, W, ch, size); scale values, shift and fill are traced. Callers
with a varying number of candidates should pad C to a fixed chunk (e.g. repeat a candidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Positions (dy, dx) in units of shift * side: centre, up, down, left, right.
POSITIONS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
N_VARIANTS = 8  # 4 quarter turns x (unflipped, flipped)


class Augmentations(NamedTuple):
    """One row per patch of a candidate, in patch order (all arrays have length K)."""

    scale: np.ndarray  # float [K]: box enlargement factor
    offset: np.ndarray  # float [K, 2]: (dy, dx) patch-centre shift, in units of the patch side
    quarter_turns: np.ndarray  # int [K]: np.rot90's k, counter-clockwise
    flipped: np.ndarray  # bool [K]: flipped left-right after the rotation


def augmentation_index(scale: int, position: int, variant: int, n_scales: int = 3) -> int:
    """Index of one patch in a candidate's K (scale, then position, then variant)."""
    return int(np.ravel_multi_index((scale, position, variant),
                                    (n_scales, len(POSITIONS), N_VARIANTS)))


def augmentation_grid(scales: Sequence[float] = (1.0, 1.2, 1.5),
                      shift: float = 0.1) -> Augmentations:
    """The K augmentations of `candidate_patches`, in its patch order."""
    s, p, v = np.meshgrid(np.arange(len(scales)), np.arange(len(POSITIONS)),
                          np.arange(N_VARIANTS), indexing="ij")
    s, p, v = s.ravel(), p.ravel(), v.ravel()
    return Augmentations(
        scale=np.asarray(scales, dtype=np.float64)[s],
        offset=shift * np.asarray(POSITIONS, dtype=np.float64)[p],
        quarter_turns=v // 2,
        flipped=(v % 2).astype(bool),
    )


def _check_frame(frame: np.ndarray | jax.Array, caller: str) -> None:
    """Frames are uint8 [H, W, ch] with ch 1 (grey) or 3; anything else is a caller's bug."""
    if frame.dtype != np.uint8:
        raise ValueError(f"{caller}: frame must be uint8, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3):
        raise ValueError(f"{caller}: frame must be [H, W, ch] with ch 1 or 3, got {frame.shape}")


def _check_fill(fill: float, caller: str) -> None:
    if not 0 <= fill <= 255:
        raise ValueError(f"{caller}: fill must lie in 0..255, got {fill!r}")


def _dihedral(patch: jax.Array) -> jax.Array:
    """[p, p, ch] -> [8, p, p, ch]: rot90 by k = 0..3, each unflipped then flipped left-right."""
    turns = [jnp.rot90(patch, k, axes=(0, 1)) for k in range(4)]
    return jnp.stack([v for t in turns for v in (t, jnp.flip(t, axis=1))])


@partial(jax.jit, static_argnames=("patch_size",))
def _cut(frame: jax.Array, centres: jax.Array, sides: jax.Array, scales: jax.Array,
         offsets: jax.Array, fill: jax.Array, patch_size: int) -> jax.Array:
    """uint8 [C, B * 8, p, p, ch] for centres [C, 2], sides [C] (max(h, w)) and the B base
    (scale, position) patches given by scales [B] and offsets [B, 2] (units of the side)."""
    unit = (jnp.arange(patch_size, dtype=jnp.float32) - (patch_size - 1) / 2.0) / patch_size
    # Bilinear weights sum to 1, so sampling (frame - fill) with 0 outside and adding fill back
    # reads `fill` outside while keeping it traced (map_coordinates' cval is static).
    image = jnp.moveaxis(frame.astype(jnp.float32) - fill, -1, 0)  # [ch, H, W]

    def base(centre: jax.Array, side: jax.Array, scale: jax.Array, offset: jax.Array) -> jax.Array:
        length = side * scale
        y = centre[0] + offset[0] * length + unit * length
        x = centre[1] + offset[1] * length + unit * length
        coords = [jnp.broadcast_to(y[:, None], (patch_size,) * 2),
                  jnp.broadcast_to(x[None, :], (patch_size,) * 2)]
        sample = partial(jax.scipy.ndimage.map_coordinates, coordinates=coords, order=1,
                         mode="constant")
        return _dihedral(jnp.moveaxis(jax.vmap(sample)(image), 0, -1) + fill)

    per_candidate = jax.vmap(base, in_axes=(None, None, 0, 0))  # [B, 8, p, p, ch]
    values = jax.vmap(per_candidate, in_axes=(0, 0, None, None))(centres, sides, scales, offsets)
    patches = jnp.round(jnp.clip(values, 0.0, 255.0)).astype(jnp.uint8)
    return patches.reshape(values.shape[0], -1, *values.shape[3:])


def candidate_patches(
    frame: np.ndarray | jax.Array,
    centres: np.ndarray,
    boxes: np.ndarray,
    *,
    scales: Sequence[float] = (1.0, 1.2, 1.5),
    shift: float = 0.1,
    patch_size: int = 32,
    fill: float = 0,
) -> jax.Array:
    """Multi-scale, shifted, dihedral patches: uint8 [C, len(scales) * 5 * 8, p, p, ch].

    `frame` uint8 [H, W, ch] (ch 1 or 3); `centres` [C, 2] (y, x) and `boxes` [C, 2] (height,
    width) in pixels. Geometry, outside-frame `fill` and patch order: module docstring. The
    patches stay on the device (the scorer resizes them to the network input there).
    """
    _check_frame(frame, "candidate_patches")
    _check_fill(fill, "candidate_patches")
    centres = np.asarray(centres, dtype=np.float32).reshape(-1, 2)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 2)
    if len(centres) != len(boxes):
        raise ValueError(f"candidate_patches: {len(centres)} centres but {len(boxes)} boxes")
    if not (np.isfinite(centres).all() and np.isfinite(boxes).all()):
        raise ValueError("candidate_patches: centres and boxes must be finite")
    if np.any(boxes < 0) or np.any(boxes.max(axis=1) <= 0):
        raise ValueError("candidate_patches: box sizes must be >= 0 with a positive larger side")
    scales_arr = np.asarray(scales, dtype=np.float32)
    if (scales_arr.ndim != 1 or scales_arr.size == 0 or not np.isfinite(scales_arr).all()
            or np.any(scales_arr <= 0) or not np.isfinite(shift) or patch_size < 1):
        raise ValueError(f"candidate_patches: need positive finite scales, a finite shift and "
                         f"patch_size >= 1 (got {scales!r}, {shift!r}, {patch_size!r})")
    grid = augmentation_grid(scales_arr, shift)
    k, ch = len(grid.scale), frame.shape[-1]
    if len(centres) == 0:
        return jnp.zeros((0, k, patch_size, patch_size, ch), dtype=jnp.uint8)
    return _cut(jnp.asarray(frame), centres, boxes.max(axis=1),
                grid.scale[::N_VARIANTS].astype(np.float32),
                grid.offset[::N_VARIANTS].astype(np.float32), jnp.float32(fill),
                patch_size=patch_size)


def crop_offsets(rng: np.random.Generator | int, frame_shape: Sequence[int], size: int,
                 n: int) -> np.ndarray:
    """n top-left offsets (y, x), int32 [n, 2], uniform over the positions where a size x size
    crop fits inside a frame of `frame_shape` (H, W, ...); `rng` is a Generator or a seed.

    Along an axis shorter than `size` the crop is centred instead (negative offset; the odd
    pixel of padding goes to the bottom / right), and `random_crops` fills the rest.
    """
    if size < 1 or n < 0:
        raise ValueError(f"crop_offsets: need size >= 1 and n >= 0, got {size}, {n}")
    gen = np.random.default_rng(rng)
    axes = []
    for extent in frame_shape[:2]:
        room = extent - size
        axes.append(gen.integers(0, room + 1, size=n) if room >= 0 else np.full(n, room // 2))
    return np.stack(axes, axis=1).astype(np.int32)


@partial(jax.jit, static_argnames=("size",))
def _crops(frames: jax.Array, which: jax.Array, offsets: jax.Array, fill: jax.Array,
           size: int) -> jax.Array:
    """uint8 [N, size, size, ch]: crop n of frame which[n], from frames padded by `size` with
    `fill` on every side (a dynamic_slice clamps out-of-range starts; the padding keeps them)."""
    padded = jnp.pad(frames, ((0, 0), (size, size), (size, size), (0, 0)),
                     constant_values=fill)

    def one(index: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(padded, (index, offset[0] + size, offset[1] + size, 0),
                                     (1, size, size, frames.shape[-1]))[0]

    return jax.vmap(one)(which, offsets)


def frame_crops(frames: np.ndarray | jax.Array, which: np.ndarray, offsets: np.ndarray,
                size: int, *, fill: int = 0) -> jax.Array:
    """size x size crops of a stack of frames [F, H, W, ch]: crop n is cut from frame which[n]
    at top-left offsets[n] (y, x); uint8 [N, size, size, ch], cut on the device where `frames`
    lives (keep a stack there and only indices travel).

    No resampling. Offsets may reach outside the frame (e.g. `crop_offsets` centring a crop on
    a small frame), down to -size and up to the frame's extent; the outside reads `fill`.
    """
    if frames.ndim != 4:
        raise ValueError(f"frame_crops: frames must be [F, H, W, ch], got {frames.shape}")
    _check_frame(frames[0] if len(frames) else np.zeros((1, 1, 3), np.uint8), "frame_crops")
    _check_fill(fill, "frame_crops")
    which = np.asarray(which).reshape(-1)
    offsets = np.asarray(offsets).reshape(-1, 2)
    for name, values in (("which", which), ("offsets", offsets)):
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"frame_crops: {name} must be integers, got dtype {values.dtype}")
    f, h, w, ch = frames.shape
    if len(which) != len(offsets):
        raise ValueError(f"frame_crops: {len(which)} frame indices but {len(offsets)} offsets")
    if size < 1 or np.any(offsets < -size) or np.any(offsets > (h, w)):
        raise ValueError(f"frame_crops: need size >= 1 and offsets in [-size, (H, W)] "
                         f"(size {size}, frames {frames.shape})")
    if np.any(which < 0) or np.any(which >= f):
        raise ValueError(f"frame_crops: frame indices must lie in [0, {f})")
    if len(offsets) == 0:
        return jnp.zeros((0, size, size, ch), dtype=jnp.uint8)
    return _crops(jnp.asarray(frames), which.astype(np.int32), offsets.astype(np.int32),
                  jnp.uint8(fill), size=size)


def random_crops(frame: np.ndarray | jax.Array, offsets: np.ndarray, size: int, *,
                 fill: int = 0) -> jax.Array:
    """size x size crops of one frame at top-left `offsets` [N, 2] (y, x): uint8
    [N, size, size, ch] (`frame_crops` of a stack of one)."""
    _check_frame(frame, "random_crops")
    offsets = np.asarray(offsets).reshape(-1, 2)
    return frame_crops(frame[None], np.zeros(len(offsets), np.int32), offsets, size, fill=fill)
