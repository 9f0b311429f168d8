"""Pairwise comparisons: interval overlap, paired bootstrap, DeLong, Wilcoxon."""

import numpy as np
import pytest

from ftjax.metrics import (
    BoundaryTable,
    CaseHits,
    compare_boundary,
    compare_froc,
    compare_roc,
    delong_test,
    froc_bootstrap,
    roc_bootstrap,
)
from ftjax.metrics.compare import bootstrap_p, holm


def test_bootstrap_p_value_hand_worked():
    # Smaller tail count at or beyond zero, +1 corrected, doubled: -1, 0, 1, 2 has 2 draws <= 0
    # -> 2 * 3 / 5, capped at 1; 1, 2, 3, 4 has none -> 2 * 1 / 5 = 0.4; all zero -> 1.
    diffs = np.array([[-1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [1.0, 3.0, 0.0], [2.0, 4.0, 0.0]])
    np.testing.assert_allclose(bootstrap_p(diffs), [1.0, 0.4, 1.0])
    with_nan = np.array([[1.0], [np.nan], [2.0], [3.0], [4.0]])
    assert bootstrap_p(with_nan)[0] == pytest.approx(0.4)  # NaN resamples are not counted


def test_holm_hand_worked():
    # Four tests (the NaN is none): sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 gives
    # 0.02, 0.03, 0.06, 0.04, made monotone: 0.02, 0.03, 0.06, 0.06.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan, 0.005]),
                               [0.03, 0.06, 0.06, np.nan, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1, kept monotone
    assert holm([]).size == 0


def _cases(rng: np.random.Generator, n: int, hit_rate: float) -> list[CaseHits]:
    """Each case: one lesion found with probability `hit_rate`, and 3 false positives."""
    return [
        CaseHits(
            fp_scores=rng.random(3) * 0.8,
            lesion_scores=[0.5 + 0.5 * rng.random()] if rng.random() < hit_rate else [],
            num_lesions=1,
        )
        for _ in range(n)
    ]


def test_compare_froc_uses_shared_resamples():
    rng = np.random.default_rng(0)
    strong, weak = _cases(rng, 150, 0.9), _cases(rng, 150, 0.4)
    points = [0.5, 1.0, 2.0]
    result = compare_froc({"conv1": strong, "scratch": weak}, points, n_boot=300, seed=5)
    assert list(result) == [("conv1", "scratch")]
    cmp = result["conv1", "scratch"]
    # Each side is exactly the single-configuration bootstrap with the same seed.
    alone = froc_bootstrap(strong, points, n_boot=300, seed=5, fp_grid=cmp.a.grid)
    np.testing.assert_array_equal(cmp.a.samples, alone.samples)
    np.testing.assert_array_equal(cmp.a.low, alone.low)
    np.testing.assert_allclose(cmp.diff, cmp.a.estimate - cmp.b.estimate)
    assert cmp.significant.all()
    assert (cmp.diff_low > 0).all()
    assert (cmp.p_value < 0.01).all()
    assert cmp.summary_diff > 0 and cmp.summary_p_value < 0.01


def test_compare_froc_identical_configurations():
    cases = _cases(np.random.default_rng(1), 80, 0.6)
    cmp = compare_froc({"a": cases, "b": list(cases)}, [1.0, 2.0], n_boot=200)["a", "b"]
    np.testing.assert_array_equal(cmp.diff, [0.0, 0.0])
    np.testing.assert_array_equal(cmp.p_value, [1.0, 1.0])
    assert cmp.intervals_overlap.all() and not cmp.significant.any()


def test_compare_froc_rejects_different_cases():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="same cases"):
        compare_froc({"a": _cases(rng, 10, 0.5), "b": _cases(rng, 11, 0.5)})
    two_lesions = [CaseHits([0.1], [], num_lesions=2)] + _cases(rng, 9, 0.5)
    with pytest.raises(ValueError, match="same cases"):
        compare_froc({"a": _cases(rng, 10, 0.5), "b": two_lesions})
    with pytest.raises(ValueError, match="at least two"):
        compare_froc({"a": _cases(rng, 10, 0.5)})


def test_compare_roc_all_pairs():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    configs = {
        "fc8": labels + rng.normal(size=300) * 2.0,
        "conv5": labels + rng.normal(size=300) * 0.5,
        "scratch": labels + rng.normal(size=300) * 0.8,
    }
    result = compare_roc(labels, configs, n_boot=300, seed=1)
    assert list(result) == [("fc8", "conv5"), ("fc8", "scratch"), ("conv5", "scratch")]
    cmp = result["fc8", "conv5"]
    expected = delong_test(labels, configs["fc8"], configs["conv5"])
    assert cmp.delong == expected
    assert cmp.delong.p_value < 1e-6
    alone = roc_bootstrap(labels, configs["conv5"], n_boot=300, seed=1)
    np.testing.assert_array_equal(cmp.bootstrap.b.samples, alone.samples)
    assert cmp.bootstrap.summary_diff == pytest.approx(expected.difference)
    assert cmp.bootstrap.summary_diff_high < 0 and cmp.bootstrap.summary_p_value < 0.01
    with pytest.raises(ValueError, match="length mismatch"):
        compare_roc(labels, {"a": configs["fc8"], "b": configs["conv5"][:-1]})


def _table(li: list[float]) -> BoundaryTable:
    values = np.asarray(li, dtype=float)
    return BoundaryTable(li_um=values, ma_um=values, imt_signed_um=values, imt_abs_um=values)


def test_compare_boundary_wilcoxon_hand_worked():
    base = [30.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    # a - b = 1, 2, 3, 4, 5, 6: every sign positive; exact two-sided p = 2 / 2**6.
    better = compare_boundary({"a": _table([31, 32, 33, 34, 35, 36]), "b": _table(base)})
    li = better["a", "b"]["li_um"]
    assert (li.n, li.statistic, li.median_diff) == (6, 0.0, 3.5)
    assert li.p_value == pytest.approx(2 / 64)
    # a - b = 1, -2, 3, 4, -5, 6: W- = 2 + 5 = 7; 18 of the 64 subsets of ranks 1..6 sum to
    # <= 7 (sums 0..7 occur 1, 1, 1, 2, 2, 3, 4, 4 times), so p = 2 * 18 / 64.
    mixed = compare_boundary({"a": _table([31, 28, 33, 34, 25, 36]), "b": _table(base)})
    assert mixed["a", "b"]["ma_um"].statistic == 7.0
    assert mixed["a", "b"]["ma_um"].p_value == pytest.approx(36 / 64)
    same = compare_boundary({"a": _table(base), "b": _table(base)})["a", "b"]["imt_abs_um"]
    assert (same.p_value, same.median_diff) == (1.0, 0.0)
    with pytest.raises(ValueError, match="same images"):
        compare_boundary({"a": _table(base), "b": _table(base[:-1])})
