"""2-D candidate patches and random crops, checked against analytic frames and numpy slicing."""

import numpy as np
import pytest

from ftjax.patches import planar
from ftjax.patches.planar import (
    POSITIONS,
    augmentation_grid,
    augmentation_index,
    candidate_patches,
    crop_offsets,
    frame_crops,
    random_crops,
)

H, W, P = 64, 80, 16  # frame and patch sizes small enough for 2 CPU cores
SCALES = (1.0, 1.2, 1.5)


def _affine(y, x):
    """Three affine channels that stay inside 0..255 on the 64 x 80 frame (and just outside)."""
    return np.stack([y + 2 * x + 20, 230 - 2 * y - x, 2 * y + x + 40], axis=-1)


def _affine_frame() -> np.ndarray:
    y, x = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return _affine(y, x).astype(np.uint8)


def _noise_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _grid(centre, side, offset, p=P):
    """The documented sample points: p pixel centres covering `side`, shifted by offset * side."""
    unit = (np.arange(p) - (p - 1) / 2) / p
    return centre[0] + offset[0] * side + unit * side, centre[1] + offset[1] * side + unit * side


def _bilinear(frame, ys, xs, fill):
    """Reference bilinear interpolation of a frame extended by `fill`: [len(ys), len(xs), ch]."""
    pad = 64
    ext = np.pad(frame.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), constant_values=fill)
    yy, xx = np.meshgrid(ys + pad, xs + pad, indexing="ij")
    y0, x0 = np.floor(yy).astype(int), np.floor(xx).astype(int)
    wy, wx = (yy - y0)[..., None], (xx - x0)[..., None]
    return ((1 - wy) * (1 - wx) * ext[y0, x0] + (1 - wy) * wx * ext[y0, x0 + 1]
            + wy * (1 - wx) * ext[y0 + 1, x0] + wy * wx * ext[y0 + 1, x0 + 1])


def _close(a, b):
    """Equal to within rounding: at most 1 grey level apart."""
    np.testing.assert_array_less(np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32)), 2)


def test_patch_order_and_grid():
    grid = augmentation_grid(SCALES, 0.1)
    assert len(grid.scale) == 120 == len(SCALES) * len(POSITIONS) * 8
    assert augmentation_index(0, 0, 7) == 7 and augmentation_index(0, 1, 0) == 8
    k = augmentation_index(2, 4, 7)
    assert k == 119
    assert grid.scale[k] == 1.5 and np.allclose(grid.offset[k], (0.0, 0.1))
    assert grid.quarter_turns[k] == 3 and grid.flipped[k]
    k = augmentation_index(1, 1, 2)
    assert grid.scale[k] == 1.2 and np.allclose(grid.offset[k], (-0.1, 0.0))
    assert grid.quarter_turns[k] == 1 and not grid.flipped[k]


def test_affine_frame_matches_analytic_values_at_every_scale_and_position():
    """Bilinear sampling is exact on an affine frame: every unrotated patch equals the affine
    function at the documented grid points."""
    centre, box = (30.3, 41.7), (10.0, 14.0)
    out = np.asarray(candidate_patches(_affine_frame(), [centre], [box], patch_size=P))
    assert out.shape == (1, 120, P, P, 3) and out.dtype == np.uint8
    for s, scale in enumerate(SCALES):
        for p, (dy, dx) in enumerate(POSITIONS):
            ys, xs = _grid(centre, 14.0 * scale, (0.1 * dy, 0.1 * dx))
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            _close(out[0, augmentation_index(s, p, 0)], np.round(_affine(yy, xx)))


def test_dihedral_variants_are_rotations_and_flips_of_variant_zero():
    frame = _noise_frame(1)
    out = np.asarray(candidate_patches(frame, [[20.4, 30.0], [40.0, 50.5]],
                                       [[12.0, 9.0], [20.0, 20.0]], patch_size=P))
    grid = augmentation_grid()
    for c in range(2):
        for s in range(3):
            for p in range(5):
                base = out[c, augmentation_index(s, p, 0)]
                for v in range(8):
                    k = augmentation_index(s, p, v)
                    expected = np.rot90(base, v // 2)
                    if v % 2:
                        expected = np.flip(expected, axis=1)
                    assert grid.quarter_turns[k] == v // 2 and grid.flipped[k] == bool(v % 2)
                    np.testing.assert_array_equal(out[c, k], expected)


def test_shifted_position_is_centre_patch_of_moved_candidate():
    frame, centre, box, shift = _noise_frame(2), np.array([31.2, 39.6]), (16.0, 10.0), 0.1
    side = 16.0  # the larger side, scale 1.0
    moved = [centre + shift * side * np.asarray(d) for d in POSITIONS]
    out = np.asarray(candidate_patches(frame, [centre] + moved, [box] * 6, scales=(1.0,),
                                       shift=shift, patch_size=P))
    for p in range(5):
        _close(out[0, augmentation_index(0, p, 0, n_scales=1)],
               out[1 + p, augmentation_index(0, 0, 0, n_scales=1)])


def test_enlarged_scale_equals_unit_scale_of_enlarged_box():
    frame, centre = _noise_frame(3), (33.0, 37.5)
    out = np.asarray(candidate_patches(frame, [centre, centre], [[12.0, 20.0], [18.0, 30.0]],
                                       patch_size=P))
    for p in range(5):
        for v in range(8):
            _close(out[0, augmentation_index(2, p, v)], out[1, augmentation_index(0, p, v)])


def test_corner_candidates_read_fill_outside_the_frame():
    frame, fill = _affine_frame(), 7
    centres, box = [(0.0, 0.0), (H - 1.0, W - 1.0)], (20.0, 12.0)
    out = np.asarray(candidate_patches(frame, centres, [box] * 2, patch_size=P, fill=fill))
    for c, centre in enumerate(centres):
        for s, scale in enumerate(SCALES):
            for p, (dy, dx) in enumerate(POSITIONS):
                ys, xs = _grid(centre, 20.0 * scale, (0.1 * dy, 0.1 * dx))
                patch = out[c, augmentation_index(s, p, 0)]
                _close(patch, np.round(_bilinear(frame, ys, xs, fill)))
                outside = ((ys <= -1) | (ys >= H))[:, None] | ((xs <= -1) | (xs >= W))[None, :]
                assert outside.sum() > P  # a real part of the patch lies outside
                assert np.all(patch[outside] == fill)
                inside = ((ys >= 0) & (ys <= H - 1))[:, None] & ((xs >= 0) & (xs <= W - 1))[None]
                yy, xx = np.meshgrid(ys, xs, indexing="ij")
                _close(patch[inside], np.round(_affine(yy, xx))[inside])


def test_grey_frames_match_the_first_channel():
    rgb = _noise_frame(4)
    centres, boxes = [[10.0, 70.0], [50.0, 5.0]], [[8.0, 11.0], [14.0, 6.0]]
    colour = np.asarray(candidate_patches(rgb, centres, boxes, patch_size=P))
    grey = np.asarray(candidate_patches(rgb[..., :1], centres, boxes, patch_size=P))
    assert grey.shape == (2, 120, P, P, 1)
    np.testing.assert_array_equal(grey, colour[..., :1])
    offsets = crop_offsets(0, rgb.shape, 24, 5)
    np.testing.assert_array_equal(np.asarray(random_crops(rgb[..., :1], offsets, 24)),
                                  np.asarray(random_crops(rgb, offsets, 24))[..., :1])


def test_compiles_once_per_shape():
    frame = _noise_frame(5)[:40, :48, :1]  # a shape no other test uses
    before = planar._cut._cache_size()
    for i in range(3):  # new values, scales, shift and fill: same shapes, no new trace
        candidate_patches(frame, [[10.0 + i, 20.0], [30.0, 5.0 * i]], [[6.0 + i, 8.0]] * 2,
                          scales=(1.0 + i, 2.0), shift=0.1 * i, patch_size=8, fill=i)
    assert planar._cut._cache_size() == before + 1
    before = planar._crops._cache_size()
    for seed in range(3):
        random_crops(frame, crop_offsets(seed, frame.shape, 12, 7), 12, fill=seed)
    assert planar._crops._cache_size() == before + 1


def test_random_crops_equal_numpy_slices():
    frame, size = _noise_frame(6), 24
    offsets = crop_offsets(42, frame.shape, size, 200)
    np.testing.assert_array_equal(offsets, crop_offsets(42, frame.shape, size, 200))
    assert not np.array_equal(offsets, crop_offsets(43, frame.shape, size, 200))
    assert offsets.min() == 0 and offsets[:, 0].max() == H - size
    assert offsets[:, 1].max() == W - size
    crops = np.asarray(random_crops(frame, offsets, size))
    assert crops.shape == (200, size, size, 3) and crops.dtype == np.uint8
    for (y, x), crop in zip(offsets, crops, strict=True):
        np.testing.assert_array_equal(crop, frame[y:y + size, x:x + size])


def test_frame_crops_cut_each_crop_from_its_own_frame():
    frames, size = np.stack([_noise_frame(s) for s in range(4)]), 20
    which = np.array([3, 0, 2, 2, 1, 3])
    offsets = crop_offsets(5, frames.shape[1:], size, len(which))
    offsets[0] = (-size, frames.shape[2])  # wholly outside: all fill
    crops = np.asarray(frame_crops(frames, which, offsets, size, fill=9))
    assert (crops[0] == 9).all()
    for k in range(1, len(which)):
        (y, x), f = offsets[k], frames[which[k]]
        np.testing.assert_array_equal(crops[k], f[y:y + size, x:x + size])
    with pytest.raises(ValueError, match="frame indices"):
        frame_crops(frames, np.array([4]), offsets[:1], size)
    with pytest.raises(ValueError, match="1 frame indices but 2 offsets"):
        frame_crops(frames, np.array([0]), offsets[:2], size)


def test_crops_reaching_outside_are_padded_not_shifted():
    frame, size, fill = _noise_frame(7), 24, 9
    padded = np.pad(frame, ((size, size), (size, size), (0, 0)), constant_values=fill)
    offsets = np.array([[-size, -size], [-5, W - 10], [H, 0], [H - size, W]])
    crops = np.asarray(random_crops(frame, offsets, size, fill=fill))
    for (y, x), crop in zip(offsets, crops, strict=True):
        np.testing.assert_array_equal(crop, padded[y + size:y + 2 * size, x + size:x + 2 * size])


def test_frame_smaller_than_crop_is_centred():
    frame, size = _noise_frame(8)[:20, :30], 24
    offsets = crop_offsets(np.random.default_rng(1), frame.shape, size, 50)
    assert np.all(offsets[:, 0] == -2) and np.all((offsets[:, 1] >= 0) & (offsets[:, 1] <= 6))
    crops = np.asarray(random_crops(frame, offsets, size))
    for (_, x), crop in zip(offsets, crops, strict=True):
        np.testing.assert_array_equal(crop[2:22], frame[:, x:x + size])
        assert np.all(crop[:2] == 0) and np.all(crop[22:] == 0)


def test_empty_inputs_return_empty_arrays():
    frame = _noise_frame(9)
    out = candidate_patches(frame, np.zeros((0, 2)), np.zeros((0, 2)), patch_size=P)
    assert out.shape == (0, 120, P, P, 3) and out.dtype == np.uint8
    out = candidate_patches(frame[..., :1], [], [], scales=(1.0,), patch_size=P)
    assert out.shape == (0, 40, P, P, 1)
    crops = random_crops(frame, np.zeros((0, 2), dtype=np.int64), 24)
    assert crops.shape == (0, 24, 24, 3) and crops.dtype == np.uint8


@pytest.mark.parametrize("frame, centres, boxes, kwargs, match", [
    (np.zeros((H, W, 3), np.float32), [[5, 5]], [[4, 4]], {}, "uint8"),
    (np.zeros((H, W), np.uint8), [[5, 5]], [[4, 4]], {}, r"\[H, W, ch\]"),
    (np.zeros((H, W, 2), np.uint8), [[5, 5]], [[4, 4]], {}, "ch 1 or 3"),
    (np.zeros((H, W, 3), np.uint8), [[5, 5]], [[np.nan, 4]], {}, "finite"),
    (np.zeros((H, W, 3), np.uint8), [[np.inf, 5]], [[4, 4]], {}, "finite"),
    (np.zeros((H, W, 3), np.uint8), [[5, 5]], [[-1, 4]], {}, ">= 0"),
    (np.zeros((H, W, 3), np.uint8), [[5, 5]], [[0, 0]], {}, "positive larger side"),
    (np.zeros((H, W, 3), np.uint8), [[5, 5], [6, 6]], [[4, 4]], {}, "2 centres but 1 boxes"),
    (np.zeros((H, W, 3), np.uint8), [[5, 5]], [[4, 4]], {"scales": (1.0, 0.0)}, "scales"),
    (np.zeros((H, W, 3), np.uint8), [[5, 5]], [[4, 4]], {"fill": 300}, "fill"),
])
def test_candidate_patches_rejects_bad_input(frame, centres, boxes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        candidate_patches(frame, centres, boxes, **kwargs)


@pytest.mark.parametrize("frame, offsets, size, match", [
    (np.zeros((H, W, 3), np.int16), [[0, 0]], 8, "uint8"),
    (np.zeros((H, W, 4), np.uint8), [[0, 0]], 8, "ch 1 or 3"),
    (np.zeros((H, W, 3), np.uint8), [[0.5, 0]], 8, "integers"),
    (np.zeros((H, W, 3), np.uint8), [[-9, 0]], 8, "offsets in"),
    (np.zeros((H, W, 3), np.uint8), [[0, W + 1]], 8, "offsets in"),
    (np.zeros((H, W, 3), np.uint8), [[0, 0]], 0, "size >= 1"),
])
def test_random_crops_rejects_bad_input(frame, offsets, size, match):
    with pytest.raises(ValueError, match=match):
        random_crops(frame, offsets, size)
