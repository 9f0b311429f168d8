"""Data parallelism: the jit-sharded and pmap steps on 8 simulated CPU devices, and two processes
with jax.distributed, all agree with a plain single-device step on the same global batch."""

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from ftjax import layerwise, parallel, scoring
from ftjax.models import AlexNet

SIZE, BATCH, STEPS = 67, 16, 3  # 67 px input: pool5 is 1x1, so every step is fast on CPU


def setup(tune_from):
    """Model (no dropout: the strategies draw masks differently), params, optimizer, batches."""
    model = AlexNet(num_classes=2, dropout_rate=0.0)
    random_trunk = layerwise.init_params(None, "scratch", 2, "caffe", jax.random.key(0), size=SIZE)
    params = layerwise.init_params(None if tune_from == "scratch" else random_trunk, tune_from, 2,
                                   "caffe", jax.random.key(1), size=SIZE)
    optimizer = layerwise.make_optimizer(tune_from, steps_per_epoch=2,
                                         config=layerwise.SGDConfig(base_lr=0.01))
    rng = np.random.default_rng(0)
    batches = [{"inputs": rng.integers(0, 256, (BATCH, 16, 16, 3), dtype=np.uint8),
                "labels": rng.integers(0, 2, BATCH).astype(np.int32)} for _ in range(STEPS)]
    prepare = functools.partial(scoring.prepare, variant="caffe", size=SIZE)

    def make_step(axis_name=None):
        return layerwise.make_train_step(model, optimizer, prepare=prepare, axis_name=axis_name)

    return params, optimizer, batches, make_step


def single_device(tune_from):
    params, optimizer, batches, make_step = setup(tune_from)
    trainable, frozen = layerwise.split(params, tune_from)
    opt_state, step = optimizer.init(trainable), jax.jit(make_step())
    for i, b in enumerate(batches):
        trainable, opt_state, _ = step(trainable, frozen, opt_state, b, jax.random.key(i))
    return jax.device_get(trainable)


def with_strategy(name, tune_from, rows=slice(None)):
    params, optimizer, batches, make_step = setup(tune_from)
    strategy = parallel.make_strategy(name, make_step)
    trainable, frozen = layerwise.split(params, tune_from)
    trainable, frozen, opt_state = strategy.put_state((trainable, frozen,
                                                      optimizer.init(trainable)))
    for i, b in enumerate(batches):
        local = {k: v[rows] for k, v in b.items()}
        trainable, opt_state, metrics = strategy.step(
            trainable, frozen, opt_state, strategy.put_batch(local), jax.random.key(i))
    return jax.device_get(strategy.local(trainable)), metrics


def assert_trees_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("tune_from", ["fc7", "scratch"])
@pytest.mark.parametrize("strategy", ["jit", "pmap"])
def test_strategies_match_a_single_device_step(strategy, tune_from):
    assert jax.device_count() == 8
    reference = single_device(tune_from)
    got, metrics = with_strategy(strategy, tune_from)
    assert_trees_close(got, reference)
    assert np.isfinite(np.asarray(metrics["loss"])).all()


def test_batch_must_split_over_devices():
    with pytest.raises(ValueError, match="not divisible by the 8 devices"):
        parallel.process_rows(12)
    with pytest.raises(ValueError, match="unknown parallel strategy"):
        parallel.make_strategy("dp", lambda axis: None)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_agree_with_one(tmp_path):
    """Two local processes with 2 CPU devices each (jax.distributed over localhost) train on
    their own rows of every global batch and end where one process ends."""
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = ("import sys, distributed_worker as w; w.main(int(sys.argv[1]), sys.argv[2], "
            "sys.argv[3])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i), f"127.0.0.1:{port}",
                               str(tmp_path / f"out{i}.npz")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    reference = jax.tree.leaves(single_device("conv5"))
    for i in range(2):
        with np.load(tmp_path / f"out{i}.npz") as z:
            got = [z[f"a{j}"] for j in range(len(z.files))]
        assert_trees_close(got, reference)
