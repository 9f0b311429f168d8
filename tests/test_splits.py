"""Case splits and the paper's reduced training sets (whole cases, by the data seed)."""

import numpy as np
import pytest

from ftjax.data.splits import VALIDATION_STREAM, SplitPlan, k_fold, reduce_cases, split_cases


def test_split_is_by_case_seeded_and_disjoint():
    cases = [f"p{i}" for i in range(10)]
    fit, val = split_cases(cases, 0.2, seed=3)
    assert len(val) == 2 and len(fit) == 8 and set(fit) | set(val) == set(cases)
    assert not set(fit) & set(val)
    assert split_cases(cases, 0.2, seed=3) == (fit, val)
    assert split_cases(cases, 0.2, seed=4) != (fit, val)
    assert split_cases(cases, 0.2, seed=3, stream=VALIDATION_STREAM) != (fit, val)
    assert split_cases(["a", "b"], 0.2, seed=0)[1]  # at least one held out
    assert split_cases(["a", "b"], 0.9, seed=0)[0]  # and never all
    with pytest.raises(ValueError, match="at least 2"):
        split_cases(["a"], 0.2, 0)
    with pytest.raises(ValueError, match="unique"):
        split_cases(["a", "a", "b"], 0.2, 0)


def test_reduction_counts_units_and_keeps_whole_cases():
    cases = [f"patient{i}" for i in range(8)]
    pes = np.array([4, 0, 1, 3, 2, 0, 5, 1])  # 16 PEs
    kept, reached = reduce_cases(cases, pes, 0.5, seed=0)
    # Hand check: the seeded order's prefix whose PE share is closest to one half.
    order = np.random.default_rng([0, 1]).permutation(8)
    shares = np.cumsum(pes[order]) / 16
    k = int(np.argmin(np.abs(shares - 0.5))) + 1
    assert kept == [cases[i] for i in sorted(order[:k])]
    assert reached == pytest.approx(shares[k - 1]) and abs(reached - 0.5) <= 5 / 16
    assert reached == pytest.approx(pes[[cases.index(c) for c in kept]].sum() / 16)
    # Nested: a smaller fraction keeps a subset of a larger one's cases.
    quarter, _ = reduce_cases(cases, pes, 0.25, seed=0)
    assert set(quarter) <= set(kept) and quarter
    # Videos: one unit per case, so the fraction is of the cases; at least one case stays.
    videos = [f"v{i}" for i in range(20)]
    assert len(reduce_cases(videos, np.ones(20), 0.25, seed=1)[0]) == 5
    one, reached = reduce_cases(videos, np.ones(20), 0.01, seed=1)
    assert len(one) == 1 and reached == pytest.approx(0.05)
    assert reduce_cases(videos, np.ones(20), 1.0, seed=1) == (videos, 1.0)


def test_reduction_rejects_bad_input():
    with pytest.raises(ValueError, match="one non-negative unit count per case"):
        reduce_cases(["a", "b"], np.array([1.0]), 0.5, 0)
    with pytest.raises(ValueError, match="fraction"):
        reduce_cases(["a", "b"], np.ones(2), 0.0, 0)


def test_k_fold_tests_every_case_exactly_once_in_folds_of_near_equal_size():
    cases = [f"v{i}" for i in range(11)]
    held = [k_fold(cases, 4, k, seed=2)[1] for k in range(4)]
    assert sorted(sum(held, [])) == sorted(cases)  # each case in exactly one test fold
    assert sorted(len(h) for h in held) == [2, 3, 3, 3]
    for k in range(4):
        kept, out = k_fold(cases, 4, k, seed=2)
        assert set(kept) | set(out) == set(cases) and not set(kept) & set(out)
        assert kept == [c for c in cases if c in kept]  # input order kept
    assert k_fold(cases, 4, 0, seed=3) != k_fold(cases, 4, 0, seed=2)
    for folds, fold in ((1, 0), (12, 0), (3, 3)):
        with pytest.raises(ValueError):
            k_fold(cases, folds, fold, 0)


def test_test_split_names_its_cases():
    cases = [f"p{i}" for i in range(6)]
    assert SplitPlan.parse("").divide(cases, 0.5, 0) == split_cases(cases, 0.5, 0)
    assert SplitPlan.parse("fold=1/3").divide(cases, 0.5, 0) == k_fold(cases, 3, 1, 0)
    assert SplitPlan.parse("train").divide(cases, 0.5, 0) == (cases, [])
    assert SplitPlan.parse("test").divide(cases, 0.5, 0) == ([], cases)
    for bad in ("fold=3/3", "fold=0/1", "fold=a/2", "folds", "val"):
        with pytest.raises(ValueError, match="expected"):
            SplitPlan.parse(bad)
