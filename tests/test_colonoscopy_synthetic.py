"""The SYNTHETIC colonoscopy video generator shared by the polyp and frames applications."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

import ftjax.apps.colonoscopy as colonoscopy
from ftjax.apps.colonoscopy import synthetic
from ftjax.apps.colonoscopy.synthetic import (
    DEGRADATIONS,
    INFORMATIVE_BELOW,
    Video,
    exposure_score,
    laplacian_variance,
    synthetic_video,
)

SMALL = dict(n_frames=32, shape=(96, 128))


def test_labelled_synthetic():
    assert "SYNTHETIC" in synthetic.__doc__ and "SYNTHETIC" in colonoscopy.__doc__
    assert "SYNTHETIC" in Video.__doc__
    video = synthetic_video(0, n_frames=2, shape=(48, 64))
    assert video.synthetic is True and video.video_id.startswith("synthetic")


def test_seeded_shapes_and_types():
    a, b = synthetic_video(3, **SMALL), synthetic_video(3, **SMALL)
    for field in ("frames", "masks", "informative", "strength", "camera", "polyp_centres"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.degradation == b.degradation
    assert not np.array_equal(a.frames, synthetic_video(4, **SMALL).frames)
    t, (h, w) = SMALL["n_frames"], SMALL["shape"]
    assert a.frames.shape == (t, h, w, 3) and a.frames.dtype == np.uint8
    assert a.masks.shape == (t, h, w) and a.masks.dtype == np.uint8
    assert a.informative.shape == (t,) and a.informative.dtype == bool
    assert a.strength.shape == (t,) and len(a.degradation) == t
    assert a.camera.shape == (t, 4)
    assert synthetic_video(0).frames.shape == (64, 288, 384, 3)  # CVC-ClinicDB's 384 x 288


def _project(video: Video, point: np.ndarray) -> np.ndarray:
    """Frame (row, col) of a scene point in every frame: the inverse of the documented camera."""
    h, w = video.frames.shape[1:3]
    cy, cx, scale, roll = video.camera.T
    dy, dx = point[0] - cy, point[1] - cx
    row = (np.cos(roll) * dy + np.sin(roll) * dx) / scale + (h - 1) / 2
    col = (-np.sin(roll) * dy + np.cos(roll) * dx) / scale + (w - 1) / 2
    return np.stack([row, col], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_follow_the_polyps_through_the_view(seed):
    video = synthetic_video(seed, polyps=2, informative_only=True, **SMALL)
    h, w = SMALL["shape"]
    for label, (centre, radius) in enumerate(
        zip(video.polyp_centres, video.polyp_radii, strict=True), start=1
    ):
        rc = _project(video, centre)
        seen = (video.masks == label).any(axis=(1, 2))
        # It enters and leaves the field of view.
        assert seen.any() and not seen[0] and not seen[-1]
        inside = (rc[:, 0] >= 0) & (rc[:, 0] <= h - 1) & (rc[:, 1] >= 0) & (rc[:, 1] <= w - 1)
        r, c = np.rint(rc[inside]).astype(int).T
        assert (video.masks[inside][np.arange(r.size), r, c] > 0).all()
        gap = np.maximum(np.maximum(-rc, rc - [h - 1, w - 1]), 0)
        far = np.hypot(*gap.T) > radius / video.camera[:, 2] + 2
        assert not seen[far].any()
    assert video.polyp_frames.any() and not video.polyp_frames.all()


def test_polyp_free_videos_have_empty_masks():
    assert not synthetic_video(5, polyps=0, **SMALL).masks.any()
    counts = [len(synthetic_video(s, n_frames=2, shape=(48, 64)).polyp_radii) for s in range(10)]
    assert 0 in counts and max(counts) > 0  # the default mixes polyp and polyp-free videos


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over frames of the Pearson correlation of grey frames x[i] and y[i]."""
    x, y = x.mean(axis=-1), y.mean(axis=-1)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    y = y - y.mean(axis=(1, 2), keepdims=True)
    return float(((x * y).mean(axis=(1, 2)) / (x.std(axis=(1, 2)) * y.std(axis=(1, 2)))).mean())


def test_consecutive_frames_correlate():
    """Smooth camera motion: consecutive frames share their content, other videos do not."""
    videos = [synthetic_video(s, informative_only=True, n_frames=64, shape=(96, 128)).frames
              .astype(np.float32) for s in (1, 2, 3)]
    for a, b in zip(videos, videos[1:] + videos[:1], strict=True):
        consecutive, across = _correlation(a[:-1], a[1:]), _correlation(a, b)
        assert consecutive > 0.4 and consecutive > across + 0.25, (consecutive, across)
        assert np.abs(np.diff(a, axis=0)).mean() < 0.7 * np.abs(a - b).mean()


def test_polyps_share_the_wall_colour_range():
    for seed in (0, 1):
        video = synthetic_video(seed, polyps=2, informative_only=True, **SMALL)
        on = video.polyp_frames
        pixels = video.frames[on].reshape(-1, 3).astype(np.float32)
        polyp = video.masks[on].reshape(-1) > 0
        lo, hi = np.percentile(pixels[~polyp], [5, 95], axis=0)
        mean = pixels[polyp].mean(axis=0)
        assert ((lo < mean) & (mean < hi)).all(), (lo, mean, hi)


def test_non_informative_frames_come_in_degrees_and_runs():
    videos = [synthetic_video(s, **SMALL) for s in range(6)]
    names = np.concatenate([v.degradation for v in videos])
    strength = np.concatenate([v.strength for v in videos])
    informative = np.concatenate([v.informative for v in videos])
    assert set(names) == {"none", *DEGRADATIONS}
    assert (strength[names == "none"] == 0).all()
    degraded = strength[names != "none"]
    assert (degraded > 0).all() and (degraded <= 1).all()
    assert ((degraded > 0.2) & (degraded < 0.8)).mean() > 0.3  # not only extremes
    np.testing.assert_array_equal(informative, strength < INFORMATIVE_BELOW)
    for v in videos:
        assert v.informative.any() and not v.informative.all()
        bad = np.array(v.degradation) != "none"
        starts = np.count_nonzero(bad[1:] & ~bad[:-1]) + bad[0]
        assert starts < bad.sum()  # degraded frames come in runs
    assert synthetic_video(6, informative_only=True, **SMALL).informative.all()


def test_each_degradation_does_what_its_name_says():
    clean = synthetic_video(0, informative_only=True, n_frames=1, shape=(96, 128)).frames[0]
    frame = clean.astype(np.float32)

    def degrade(kind, s):
        out = synthetic._degrade(frame, kind, s, np.random.default_rng(0), 96 / 288)
        return np.clip(out, 0, 255).astype(np.uint8)

    sharp = laplacian_variance(clean)
    for kind in ("motion_blur", "defocus", "wall_contact"):
        mild, strong = laplacian_variance(degrade(kind, 0.3)), laplacian_variance(degrade(kind, 1))
        assert strong < mild < sharp, kind
    assert exposure_score(degrade("over_exposure", 1)) < 0.5 * exposure_score(clean)
    assert degrade("under_exposure", 1).mean() < 0.2 * clean.mean()
    contact = degrade("wall_contact", 1).reshape(-1, 3).mean(axis=0)
    wall = clean.reshape(-1, 3).mean(axis=0)
    assert contact[0] / contact[1] > 1.5 * wall[0] / wall[1]  # redder
    bubbles = degrade("bubbles", 1)
    assert (bubbles.min(axis=-1) > 240).sum() > (clean.min(axis=-1) > 240).sum()


def test_baselines_match_independent_computations():
    frames = synthetic_video(7, n_frames=3, shape=(48, 64)).frames
    grey = frames.astype(np.float64).mean(axis=-1)
    expected = [ndimage.laplace(g)[1:-1, 1:-1].var() for g in grey]
    np.testing.assert_allclose(laplacian_variance(frames), expected, rtol=1e-4)
    peak = frames.max(axis=-1)
    np.testing.assert_allclose(exposure_score(frames), ((peak >= 30) & (peak < 250)).mean((1, 2)))


def test_baselines_carry_signal_but_do_not_solve_the_task():
    videos = [synthetic_video(s, n_frames=48, shape=(144, 192)) for s in range(6)]
    frames = np.concatenate([v.frames for v in videos])
    informative = np.concatenate([v.informative for v in videos])
    for baseline in (laplacian_variance, exposure_score):
        auc = roc_auc_score(informative, baseline(frames))
        assert 0.55 < auc < 0.9, (baseline.__name__, auc)
