"""Balanced epochs, batches and prefetching."""

import threading

import numpy as np
import pytest

from ftjax.input_pipeline import balanced_epoch, batches, prefetch


def test_balanced_epoch_downsamples_negatives_afresh():
    labels = np.array([1] * 10 + [0] * 90 + [2] * 5)
    e0, e1 = balanced_epoch(labels, 0, 0), balanced_epoch(labels, 0, 1)
    for e in (e0, e1):
        assert len(e) == 30 and len(set(e)) == 30
        assert np.sum(labels[e] == 0) == 15  # as many negatives as positives of any class
    assert set(np.flatnonzero(labels != 0)) <= set(e0)
    assert set(e0) != set(e1)  # another draw of negatives each epoch
    np.testing.assert_array_equal(e0, balanced_epoch(labels, 0, 0))
    # fewer negatives than positives: keep everything
    assert len(balanced_epoch(np.array([1, 1, 1, 0]), 0, 0)) == 4
    with pytest.raises(ValueError, match="both classes"):
        balanced_epoch(np.zeros(5), 0, 0)


def test_batches_drop_the_partial_batch():
    b = batches(np.arange(10), 4)
    assert [list(x) for x in b] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="fewer than one batch"):
        batches(np.arange(3), 4)


def test_prefetch_preserves_order_and_raises_errors():
    assert list(prefetch(range(10), lambda x: x * x)) == [x * x for x in range(10)]

    def boom(x):
        if x == 3:
            raise RuntimeError("bad item")
        return x

    got = []
    with pytest.raises(RuntimeError, match="bad item"):
        for v in prefetch(range(10), boom):
            got.append(v)
    assert got == [0, 1, 2]


def test_prefetch_stops_its_thread_when_abandoned():
    before = threading.active_count()
    it = prefetch(range(1000), lambda x: x)
    next(it)
    it.close()
    assert threading.active_count() == before
