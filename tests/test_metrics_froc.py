"""FROC: hit assignment, curve, interpolation and bootstrap on hand-worked cases."""

import numpy as np
import pytest

from ftjax.metrics import (
    CaseHits,
    assign_hits,
    assign_hits_to_centres,
    estimable,
    froc_bootstrap,
    froc_curve,
    froc_from_cases,
    froc_score,
    sensitivity_at,
)
from ftjax.metrics._checks import bootstrap_counts


def _mask_2d() -> np.ndarray:
    mask = np.zeros((12, 12), dtype=np.int32)
    mask[1:4, 1:4] = 1  # detected twice
    mask[6:9, 6:9] = 2  # missed
    mask[1:3, 8:11] = 5  # ignored
    return mask


def test_assign_hits_2d_duplicates_ignored_missed():
    points = [[2, 2], [1.4, 3.4], [2, 9], [10, 1], [0, 11]]
    scores = [0.3, 0.8, 0.9, 0.6, 0.1]
    hits = assign_hits(points, scores, _mask_2d(), ignore_labels=[5])
    # Lesion 1 hit twice -> once at 0.8 and no FP; the hit on 5 counts as neither; lesion 2 missed.
    np.testing.assert_array_equal(hits.lesion_scores, [0.8])
    np.testing.assert_array_equal(hits.lesion_ids, [1])
    np.testing.assert_array_equal(np.sort(hits.fp_scores), [0.1, 0.6])
    assert hits.num_lesions == 2
    assert hits.num_ignored == 1


def test_assign_hits_3d_and_bool_mask():
    mask = np.zeros((6, 8, 8), dtype=np.uint8)
    mask[1:3, 1:3, 1:3] = 3
    mask[4, 5:7, 5:7] = 7
    hits = assign_hits([[4, 6, 5], [4, 5, 6], [2, 2, 2], [0, 7, 7]], [0.5, 0.7, 0.2, 0.4], mask)
    np.testing.assert_array_equal(hits.lesion_ids, [3, 7])
    np.testing.assert_array_equal(hits.lesion_scores, [0.2, 0.7])
    np.testing.assert_array_equal(hits.fp_scores, [0.4])
    assert hits.num_lesions == 2
    single = assign_hits([[2, 2, 2]], [0.9], mask > 0)
    assert (single.num_lesions, single.lesion_scores.tolist()) == (1, [0.9])


def test_tolerance_in_mm_with_anisotropic_spacing():
    mask = np.zeros((10, 20, 20), dtype=np.int16)
    mask[5, 10, 10] = 1
    spacing = (5.0, 1.0, 1.0)  # thick slices
    points = [[6, 10, 10], [5, 10, 13]]  # 5 mm away across slices, 3 mm away in-plane
    at_4mm = assign_hits(points, [0.9, 0.4], mask, spacing=spacing, tolerance_mm=4.0)
    assert at_4mm.lesion_scores.tolist() == [0.4]
    assert at_4mm.fp_scores.tolist() == [0.9]
    at_5mm = assign_hits(points, [0.9, 0.4], mask, spacing=spacing, tolerance_mm=5.0)
    assert at_5mm.lesion_scores.tolist() == [0.9]
    assert at_5mm.fp_scores.size == 0
    # Without tolerance both are false positives.
    assert assign_hits(points, [0.9, 0.4], mask, spacing=spacing).fp_scores.size == 2


def test_tolerance_picks_nearest_lesion_and_respects_ignore():
    mask = np.zeros((1, 30, 30), dtype=np.int32)
    mask[0, 10, 5] = 1
    mask[0, 10, 12] = 2  # ignored
    sp = (1.0, 0.5, 0.5)
    # (10, 8): 1.5 mm from lesion 1, 2.0 mm from lesion 2 -> hits lesion 1.
    # (10, 10): 2.5 mm from lesion 1, 1.0 mm from lesion 2 -> falls on the ignored lesion.
    hits = assign_hits(
        [[0, 10, 8], [0, 10, 10]], [0.5, 0.6], mask, sp, tolerance_mm=3.0, ignore_labels=[2]
    )
    assert hits.lesion_ids.tolist() == [1]
    assert hits.lesion_scores.tolist() == [0.5]
    assert hits.fp_scores.size == 0
    assert hits.num_ignored == 1


def test_case_without_lesions_and_all_false():
    empty = assign_hits([[1, 1], [5, 5]], [0.2, 0.7], np.zeros((8, 8), dtype=int))
    assert empty.num_lesions == 0
    assert sorted(empty.fp_scores.tolist()) == [0.2, 0.7]
    no_detections = assign_hits(np.zeros((0, 2)), [], _mask_2d())
    assert (no_detections.num_lesions, no_detections.fp_scores.size) == (3, 0)
    # All detections false: the curve moves right only.
    curve = froc_from_cases([empty, no_detections])
    np.testing.assert_allclose(curve.fps, [0, 0.5, 1.0])
    np.testing.assert_allclose(curve.sensitivity, [0, 0, 0])
    assert froc_score(curve, [0.5, 1, 8]) == 0.0


def test_froc_curve_hand_worked_and_interpolation():
    # 2 cases, 4 lesions (one missed). Thresholds: 0.95 -> 0 FP, 1 hit; 0.9 -> 1 FP;
    # 0.5 -> 3 FP, 2 hits (FP/hit tie: one diagonal step); 0.3 -> 3 hits; 0.2 -> 4 FP.
    curve = froc_curve([0.9, 0.5, 0.5, 0.2], [0.95, 0.5, 0.3], num_lesions=4, num_cases=2)
    np.testing.assert_allclose(curve.fps, [0, 0, 0.5, 1.5, 1.5, 2.0])
    np.testing.assert_allclose(curve.sensitivity, [0, 0.25, 0.25, 0.5, 0.75, 0.75])
    np.testing.assert_array_equal(curve.thresholds, [np.inf, 0.95, 0.9, 0.5, 0.3, 0.2])
    # 0 -> top of the first vertical step; 1.0 -> halfway from (0.5, .25) to (1.5, .5);
    # 1.5 -> top of the step; beyond the last FP rate the sensitivity stays at 0.75.
    got = sensitivity_at(curve, [0, 0.25, 1.0, 1.5, 1.75, 8])
    np.testing.assert_allclose(got, [0.25, 0.25, 0.375, 0.75, 0.75, 0.75])
    assert froc_score(curve, [0.5, 1.0, 1.5]) == pytest.approx((0.25 + 0.375 + 0.75) / 3)


def test_interpolation_matches_luna16_np_interp():
    rng = np.random.default_rng(0)
    curve = froc_curve(np.round(rng.random(300), 2), np.round(rng.random(40), 2), 50, 60)
    query = np.geomspace(1e-3, 10, 50)
    np.testing.assert_allclose(
        sensitivity_at(curve, query), np.interp(query, curve.fps, curve.sensitivity)
    )


def test_from_cases_pools_and_counts_missed_lesions():
    cases = [
        CaseHits(fp_scores=[0.4], lesion_scores=[0.9], num_lesions=2),
        CaseHits(fp_scores=[0.8, 0.1], lesion_scores=[], num_lesions=1),
        CaseHits(fp_scores=[], lesion_scores=[0.3, 0.5], num_lesions=2),
    ]
    curve = froc_from_cases(cases)
    direct = froc_curve([0.4, 0.8, 0.1], [0.9, 0.3, 0.5], num_lesions=5, num_cases=3)
    np.testing.assert_array_equal(curve.fps, direct.fps)
    np.testing.assert_array_equal(curve.sensitivity, direct.sensitivity)
    assert curve.sensitivity.max() == pytest.approx(3 / 5)


def test_assign_hits_to_centres():
    centres = [[10.0, 10.0, 10.0], [10.0, 10.0, 16.0], [30.0, 30.0, 30.0]]
    radius = [4.0, 4.0, 2.0]
    points = [
        [10, 10, 12.5],  # within both first lesions: nearer to lesion 0 (2.5 vs 3.5)
        [10, 10, 14],  # within both: nearer to lesion 1
        [10, 10, 13],  # equidistant (3 and 3): lowest index, lesion 0
        [30, 30, 32.5],  # 2.5 from lesion 2, radius 2 -> false positive
        [31, 30, 30],  # on the ignored lesion 2
    ]
    scores = [0.6, 0.7, 0.9, 0.5, 0.8]
    hits = assign_hits_to_centres(points, scores, centres, radius, ignore=[False, False, True])
    np.testing.assert_array_equal(hits.lesion_ids, [0, 1])
    np.testing.assert_array_equal(hits.lesion_scores, [0.9, 0.7])
    np.testing.assert_array_equal(hits.fp_scores, [0.5])
    assert (hits.num_lesions, hits.num_ignored) == (2, 1)
    # Voxel coordinates with spacing: 2 voxels along axis 0 at 2.5 mm = 5 mm > radius 4.
    scaled = assign_hits_to_centres([[12, 10]], [0.4], [[10, 10]], 4.0, spacing=(2.5, 0.5))
    assert scaled.fp_scores.tolist() == [0.4]
    none = assign_hits_to_centres([[1, 2]], [0.3], np.zeros((0, 2)), 5.0)
    assert (none.num_lesions, none.fp_scores.tolist()) == (0, [0.3])


def _random_cases(seed: int, n: int) -> list[CaseHits]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        lesions = int(rng.integers(0, 4))
        detected = int(rng.integers(0, lesions + 1))
        cases.append(
            CaseHits(
                fp_scores=np.round(rng.random(int(rng.integers(0, 12))), 2),
                lesion_scores=np.round(0.3 + 0.7 * rng.random(detected), 2),
                num_lesions=lesions,
            )
        )
    return cases


def _explicit_resamples(cases, clusters, n_boot, seed):
    """Resample by concatenating copies of whole clusters, the slow obvious way."""
    ids = np.unique(clusters)
    rng = np.random.default_rng(seed)
    counts = next(bootstrap_counts(ids.size, n_boot, rng, chunk=n_boot))
    members = {k: [c for c, cl in zip(cases, clusters, strict=True) if cl == k] for k in ids}
    for row in counts:
        resample = []
        for k, n in zip(ids, row, strict=True):
            resample += members[k] * int(n)
        yield resample


@pytest.mark.parametrize("by_cluster", [False, True])
def test_bootstrap_matches_explicit_resampling(by_cluster):
    # The vectorised bootstrap weights each case by its cluster's draw count; an explicit
    # resample concatenates that many copies of the cluster's cases.
    cases = _random_cases(0, 40)
    clusters = np.arange(40) // 4 if by_cluster else np.arange(40)
    points = np.array([0.5, 1, 2, 4])
    boot = froc_bootstrap(cases, points, clusters=clusters, n_boot=30, seed=7)
    for row, resampled in enumerate(_explicit_resamples(cases, clusters, 30, 7)):
        assert len(resampled) == 40  # 40 cases, or 10 clusters of 4
        if sum(c.num_lesions for c in resampled) == 0:
            assert np.isnan(boot.samples[row]).all()
            continue
        expected = sensitivity_at(froc_from_cases(resampled), points)
        np.testing.assert_allclose(boot.samples[row], expected, atol=1e-12)


def test_bootstrap_counts_draw_every_cluster_count_times():
    rng = np.random.default_rng(0)
    counts = np.concatenate(list(bootstrap_counts(5, 200, rng, chunk=64)))
    assert counts.shape == (200, 5)
    assert (counts.sum(axis=1) == 5).all()
    # Each cluster is drawn once per resample on average.
    assert counts.mean() == pytest.approx(1.0, abs=0.1)


def test_bootstrap_reproducible_and_contains_estimate():
    cases = _random_cases(1, 300)
    a = froc_bootstrap(cases, [0.5, 1, 2, 4], n_boot=400, seed=11)
    b = froc_bootstrap(cases, [0.5, 1, 2, 4], n_boot=400, seed=11)
    for field in ("low", "high", "band_low", "band_high", "samples"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = froc_bootstrap(cases, [0.5, 1, 2, 4], n_boot=400, seed=12)
    assert not np.array_equal(a.samples, c.samples)
    curve = froc_from_cases(cases)
    np.testing.assert_allclose(a.estimate, sensitivity_at(curve, [0.5, 1, 2, 4]))
    assert np.all((a.low <= a.estimate) & (a.estimate <= a.high))
    on_grid = sensitivity_at(curve, a.grid)
    assert np.all((a.band_low <= on_grid) & (on_grid <= a.band_high))
    assert a.summary == pytest.approx(froc_score(curve, [0.5, 1, 2, 4]))
    assert a.summary_low <= a.summary <= a.summary_high
    assert a.n_valid == 400


def test_cluster_bootstrap_wider_for_correlated_frames():
    # 10 videos x 20 frames, one polyp per frame; a video's polyp is found in all its frames or
    # in none, so the frames of a video carry no independent information.
    found = np.random.default_rng(3).random(10) < 0.5
    video = np.repeat(np.arange(10), 20)
    cases = [CaseHits([0.2], [0.8] if found[v] else [], num_lesions=1) for v in video]
    by_frame = froc_bootstrap(cases, [1.0], n_boot=500, seed=0)
    by_video = froc_bootstrap(cases, [1.0], clusters=video, n_boot=500, seed=0)
    assert (by_video.high - by_video.low)[0] > 3 * (by_frame.high - by_frame.low)[0]


def test_bad_input():
    mask = _mask_2d()
    with pytest.raises(ValueError, match="2-D or 3-D"):
        assign_hits([[1, 1]], [0.5], np.zeros((2, 2, 2, 2), dtype=int))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        assign_hits([[1, 1, 1]], [0.5], mask)
    with pytest.raises(ValueError, match="NaN"):
        assign_hits([[1, 1]], [np.nan], mask)
    with pytest.raises(ValueError, match="length mismatch"):
        assign_hits([[1, 1], [2, 2]], [0.5], mask)
    with pytest.raises(ValueError, match="outside the mask"):
        assign_hits([[1, 20]], [0.5], mask)
    with pytest.raises(ValueError, match="instance_mask is empty"):
        assign_hits([], [], np.zeros((0, 5), dtype=int))
    with pytest.raises(ValueError, match="integer labels"):
        assign_hits([[1, 1]], [0.5], mask.astype(float))
    with pytest.raises(ValueError, match="spacing"):
        assign_hits([[1, 1]], [0.5], mask, tolerance_mm=2.0)
    with pytest.raises(ValueError, match="spacing"):
        assign_hits([[1, 1]], [0.5], mask, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="lesions"):
        froc_curve([0.1], [0.2, 0.3], num_lesions=1, num_cases=1)
    with pytest.raises(ValueError, match="num_cases"):
        froc_curve([0.1], [0.2], num_lesions=1, num_cases=0)
    with pytest.raises(ValueError, match="no cases"):
        froc_from_cases([])
    with pytest.raises(ValueError, match="no lesions"):
        froc_from_cases([CaseHits([0.2], [], num_lesions=0)])
    with pytest.raises(ValueError, match="num_lesions"):
        CaseHits([], [0.5, 0.6], num_lesions=1)
    with pytest.raises(ValueError, match="fp_rates"):
        sensitivity_at(froc_curve([0.1], [0.2], 1, 1), [-1.0])
    with pytest.raises(ValueError, match="clusters"):
        froc_bootstrap([CaseHits([0.1], [0.2], 1)] * 3, clusters=[1, 2])


def test_an_operating_point_needs_room_for_one_false_positive():
    # 0.001 FP/frame needs 1,000 frames; 300 frames measure 0.01 (3 FPs) and 0.1, not 0.001
    assert estimable([0.001, 0.01, 0.1], 300).tolist() == [False, True, True]
    assert estimable([0.001, 0.01, 0.1], 1000).tolist() == [True, True, True]
    assert estimable([1.0, 2.0], 1).tolist() == [True, True]
    assert estimable([0.5], 1).tolist() == [False]
