"""The frozen trunk's shared feature cache: the features equal the network's own, a level built
from a cached lower level equals one built from the patches, concurrent builders compute once,
a writer's leftovers are cleaned, and beyond the memory budget the features are memory-mapped."""

from __future__ import annotations

import functools
import threading

import jax
import numpy as np
import pytest

from ftjax import layerwise, scoring, trunk_cache
from ftjax.apps import ArrayCandidates, ArrayPatches
from ftjax.models import AlexNet

SIZE = 67


@pytest.fixture(scope="module")
def setup():
    model = AlexNet(num_classes=2, variant="caffe")
    params = jax.device_get(layerwise.init_params(None, "scratch", 2, "caffe",
                                                  jax.random.key(3), size=SIZE))
    rng = np.random.default_rng(0)
    fit = ArrayPatches(rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8),
                       np.arange(20) % 2, np.zeros(20, np.int64))
    val = ArrayCandidates(rng.integers(0, 255, (5, 3, 16, 16, 3), dtype=np.uint8),
                          np.arange(5) % 2)
    prepare = functools.partial(scoring.prepare, variant="caffe", size=SIZE)
    return model, params, fit, val, prepare


def _build(setup, tune_from, root, budget=4.0, log=None):
    model, params, fit, val, prepare = setup
    lines = [] if log is None else log
    cache = trunk_cache.build(model, params, tune_from, SIZE, fit, val, prepare, budget,
                              lines.append, root)
    return cache, lines


def test_features_are_the_trunks_output_and_shared_by_later_runs(setup, tmp_path):
    model, params, fit, val, prepare = setup
    cache, lines = _build(setup, "conv4", tmp_path)  # conv4 tuning: conv1..conv3 frozen
    assert cache.start == "conv4" and "computed (from the patches)" in lines[0]
    direct = model.apply({"params": params}, prepare(fit.patches), stop="conv3")
    np.testing.assert_allclose(cache.fit, direct, rtol=1e-5, atol=1e-5)
    val_direct = model.apply({"params": params}, prepare(val.array.reshape(-1, 16, 16, 3)),
                             stop="conv3")
    np.testing.assert_allclose(cache.val.reshape(15, -1), np.asarray(val_direct).reshape(15, -1),
                               rtol=1e-5, atol=1e-5)
    again, lines = _build(setup, "conv4", tmp_path)
    assert "read from" in lines[0]
    np.testing.assert_array_equal(again.fit, cache.fit)
    # Validation from the features equals scoring the patches through the whole network.
    probs = cache.validation_probabilities(model, params)
    full = scoring.Scorer(model, params, size=SIZE, chunk=8).score(val)
    np.testing.assert_allclose(probs, full, rtol=1e-4, atol=1e-6)
    # Other patches or other frozen weights: another entry, computed anew.
    shifted = {**params, "conv2": {k: v + 1e-3 for k, v in params["conv2"].items()}}
    _, lines = _build((model, shifted, fit, val, prepare), "conv4", tmp_path)
    assert "computed" in lines[0]


def test_a_level_from_a_cached_lower_level_equals_one_from_the_patches(setup, tmp_path):
    _build(setup, "conv3", tmp_path / "chain")  # caches conv1..conv2
    chained, lines = _build(setup, "conv5", tmp_path / "chain")  # conv1..conv4
    assert "from the cached conv1..conv2 features" in lines[0]
    direct, lines = _build(setup, "conv5", tmp_path / "direct")
    assert "from the patches" in lines[0]
    np.testing.assert_allclose(chained.fit, direct.fit, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chained.val, direct.val, rtol=1e-5, atol=1e-5)


def test_concurrent_builders_compute_once(setup, tmp_path):
    logs = [[], [], []]
    threads = [threading.Thread(target=_build, args=(setup, "fc6", tmp_path), kwargs={"log": x})
               for x in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    what = sorted("computed" if "computed" in x[0] else "read" for x in logs)
    assert what == ["computed", "read", "read"]


def test_leftovers_of_a_killed_writer_are_removed_and_the_budget_is_kept(setup, tmp_path):
    model, params, fit, val, _ = setup
    cache, lines = _build(setup, "fc6", tmp_path, budget=1e-9)
    assert isinstance(cache.fit, np.memmap) and "memory-mapped" in lines[0]
    key = next(p.name for p in (tmp_path / "trunk").iterdir() if p.is_dir()
               and not p.name.startswith("."))
    stale = tmp_path / "trunk" / f".{key}.tmp-999999999-1"  # its writer is gone
    stale.mkdir()
    (tmp_path / "trunk" / key / "meta.json").unlink()  # an incomplete entry is rebuilt
    again, lines = _build(setup, "fc6", tmp_path)
    assert "computed" in lines[0] and not stale.exists()
    assert not isinstance(again.fit, np.memmap)  # within the budget: in memory
    assert trunk_cache.build(model, params, "conv1", SIZE, fit, val, None, 4.0, print,
                             tmp_path) is None  # nothing frozen below conv1
    assert _build(setup, "fc6", tmp_path, budget=0.0)[0] is None  # --cache_trunk_gib=0
