"""The shape-based polyp candidate detector, on analytic synthetic frames (domes, discs, edges)."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from ftjax.apps.polyp.detector import (
    Candidates,
    DetectorConfig,
    detect,
    hits,
    sensitivity_and_rate,
)

SHAPE = (144, 192)
# Radii for 144 x 192 frames (the default is for 288 x 384).
CONFIG = DetectorConfig(radii=(4.0, 40.0), nms_distance=8.0)


def _background(seed: int, shape=SHAPE) -> np.ndarray:
    """Grey mucosa-like background: fine texture, sensor noise and a smooth illumination ramp."""
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 1.0)
    ramp = np.linspace(-15.0, 15.0, shape[1])[None, :]
    return 110.0 + 8.0 * texture / texture.std() + rng.normal(0.0, 3.0, shape) + ramp


def _ellipse(cy, cx, ay, ax, shape=SHAPE) -> np.ndarray:
    """Squared normalised elliptical radius: < 1 inside the ellipse."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2


def _dome(d2: np.ndarray, step: float = 25.0, height: float = 40.0) -> np.ndarray:
    """A shaded dome on the ellipse: a rim step, then brighter to the centre (a hemisphere)."""
    return np.where(d2 < 1, step + height * np.sqrt(np.clip(1 - d2, 0, None)), 0.0)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _inside(point, d2: np.ndarray) -> bool:
    y, x = np.rint(point).astype(int)
    return bool(d2[y, x] < 1)


ELLIPSE = (70.0, 100.0, 20.0, 26.0)  # cy, cx, semi-axes ay, ax


@pytest.fixture(scope="module")
def ellipse_frame():
    d2 = _ellipse(*ELLIPSE)
    return _u8(_background(0) + _dome(d2)), d2


def test_one_dome_top_candidate_inside_with_its_size(ellipse_frame):
    frame, d2 = ellipse_frame
    c = detect(frame, CONFIG)
    assert _inside(c.centres[0], d2)
    _, _, ay, ax = ELLIPSE
    np.testing.assert_allclose(c.boxes[0], [2 * ay, 2 * ax], rtol=0.3)


def test_two_domes_give_the_two_best_candidates():
    d1, d2 = _ellipse(50, 50, 15, 15), _ellipse(96, 142, 25, 18)
    c = detect(_u8(_background(1) + _dome(d1) + _dome(d2)), CONFIG)
    top = c.centres[:2]
    assert {_inside(p, d1) for p in top} == {True, False}
    assert {_inside(p, d2) for p in top} == {True, False}


@pytest.mark.parametrize("name", ["flipud", "fliplr", "rot90", "transpose"])
def test_candidates_move_with_the_frame(name):
    d1, d2 = _ellipse(50, 50, 15, 15), _ellipse(96, 142, 25, 18)
    frame = _u8(_background(2) + _dome(d1) + _dome(d2))
    h, w = SHAPE
    op, point, swap = {
        "flipud": (np.flipud, lambda p: np.stack([h - 1 - p[:, 0], p[:, 1]], 1), False),
        "fliplr": (np.fliplr, lambda p: np.stack([p[:, 0], w - 1 - p[:, 1]], 1), False),
        "rot90": (np.rot90, lambda p: np.stack([w - 1 - p[:, 1], p[:, 0]], 1), True),
        "transpose": (np.transpose, lambda p: p[:, ::-1], True),
    }[name]
    a, b = detect(frame, CONFIG), detect(op(frame), CONFIG)
    assert len(a) == len(b) > 0
    moved = point(a.centres)
    # Same candidates (matched by position: near-equal scores may swap ranks), up to a pixel.
    dist = np.linalg.norm(moved[:, None, :] - b.centres[None, :, :], axis=2)
    match = dist.argmin(axis=1)
    assert np.all(dist.min(axis=1) <= 1.0) and len(set(match.tolist())) == len(a)
    np.testing.assert_allclose(b.scores[match], a.scores, atol=1e-4)
    boxes = a.boxes[:, ::-1] if swap else a.boxes
    np.testing.assert_allclose(b.boxes[match][:3], boxes[:3], rtol=0.1)


def test_noise_scores_low_against_a_dome(ellipse_frame):
    frame, _ = ellipse_frame
    noise = np.random.default_rng(3).integers(0, 256, SHAPE).astype(np.uint8)
    free = dataclasses.replace(CONFIG, min_score=0.0)
    assert detect(noise, free).scores[0] < 0.8 * detect(frame, free).scores[0]


def test_straight_edge_scores_below_a_disc_of_the_same_contrast():
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    half = _u8(100.0 + 60.0 * (xx > 96))
    disc = _u8(100.0 + 60.0 * ((yy - 72) ** 2 + (xx - 96) ** 2 < 25**2))
    free = dataclasses.replace(CONFIG, min_score=0.0)
    edge_best = detect(half, free).scores.max(initial=0.0)
    c = detect(disc, free)
    assert np.linalg.norm(c.centres[0] - [72, 96]) <= 1.0
    assert edge_best < 0.25 * c.scores[0]
    # One direction of n_bins at most: below the default threshold, so no candidates.
    assert len(detect(half, CONFIG)) == 0


def test_at_most_n_candidates_sorted_and_apart():
    noise = np.random.default_rng(4).integers(0, 256, SHAPE).astype(np.uint8)
    config = dataclasses.replace(CONFIG, max_candidates=5, min_score=0.0)
    c = detect(noise, config)
    assert len(c) == 5 and isinstance(c, Candidates)
    assert np.all(np.diff(c.scores) <= 0)
    gaps = np.linalg.norm(c.centres[:, None] - c.centres[None], axis=2) + 1e9 * np.eye(len(c))
    assert gaps.min() > config.nms_distance
    assert c.centres.shape == c.boxes.shape == (5, 2) and np.all(c.boxes > 0)


def test_grey_and_equal_rgb_give_the_same_candidates(ellipse_frame):
    frame, _ = ellipse_frame
    a, b = detect(frame, CONFIG), detect(np.repeat(frame[..., None], 3, axis=2), CONFIG)
    for field in ("centres", "boxes", "scores"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-6)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_frames_have_no_candidates(value):
    assert len(detect(np.full(SHAPE, value, np.uint8), CONFIG)) == 0
    assert len(detect(np.full(SHAPE + (3,), value, np.uint8), CONFIG)) == 0


@pytest.mark.parametrize("frame", [
    np.zeros(SHAPE, np.float32),
    np.zeros(SHAPE + (3,), np.int64),
    np.zeros(SHAPE + (4,), np.uint8),
    np.zeros((2,) + SHAPE + (3,), np.uint8),
    np.zeros(100, np.uint8),
])
def test_bad_frames_are_refused(frame):
    with pytest.raises(ValueError, match="detect: frame"):
        detect(frame, CONFIG)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="DetectorConfig"):
        DetectorConfig(radii=(20.0, 10.0))


def test_hits_and_sensitivity(ellipse_frame):
    frame, d2 = ellipse_frame
    mask = (d2 < 1).astype(np.uint8)
    c = detect(frame, CONFIG)
    hit = hits(c, mask)
    assert hit.dtype == bool and hit.shape == (len(c),) and hit[0]
    assert hits(detect(np.zeros(SHAPE, np.uint8), CONFIG), mask).shape == (0,)
    # Frame 2 is flat (no candidates) with a polyp mask of two components: 1 polyp of 3 is hit.
    flat_mask = np.zeros(SHAPE, np.uint8)
    flat_mask[10:20, 10:20] = 1
    flat_mask[100:120, 150:170] = 1
    sensitivity, rate = sensitivity_and_rate(
        [frame, np.full(SHAPE, 90, np.uint8)], [mask, flat_mask], CONFIG)
    assert sensitivity == pytest.approx(1 / 3)
    assert rate == pytest.approx(len(c) / 2)
