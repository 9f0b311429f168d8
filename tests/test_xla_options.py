"""``ftjax.xla``: the CPU compiler options (convolutions kept from YNNPACK) give XLA's default
results, are chosen per backend and by ``FTJAX_CPU_LIBRARY``, and are looked up lazily; the host
memory policy stops XLA:CPU from page-faulting its buffers afresh at every call."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftjax import layerwise, xla
from ftjax.models.alexnet import AlexNet
from ftjax.scoring import prepare

needs_option = pytest.mark.skipif(xla.compiler_options("cpu") is None,
                                  reason="this jaxlib does not take ftjax's CPU options")


@needs_option
@pytest.mark.parametrize("variant,scale", [("caffe", 2.0), ("torchvision", 4.0)])
def test_ftjax_compilation_matches_xlas_default(variant, scale):
    """Every layer's forward, weight gradient and input gradient, one whole-network loss and
    gradient compiled both ways: equal to float32 rounding (the two sum in different orders)."""
    params = layerwise.init_params(None, "scratch", 2, variant, jax.random.key(0), size=67)
    # weights scaled so that the logits are of order 1: input-dependent, softmax not saturated
    params = jax.tree.map(lambda p: p * scale if p.ndim > 1 else p, params)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), np.uint8)
    batch = {"inputs": prepare(jnp.asarray(images), variant, 67),
             "labels": jnp.asarray([0, 1] * 4)}
    trainable, frozen = layerwise.split(params, "conv1")
    model = AlexNet(num_classes=2, variant=variant)
    loss = jax.value_and_grad(layerwise.make_loss_fn(model), has_aux=True)
    outs = [jax.jit(loss, compiler_options=options)(trainable, frozen, batch, jax.random.key(1))
            for options in (None, xla.CPU_OPTIONS)]
    (ref_loss, ref_logits), ref_grads = outs[0]
    (loss_, logits), grads = outs[1]
    assert 1e-2 < float(jnp.std(ref_logits)) < 50
    np.testing.assert_allclose(loss_, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4 * float(
        jnp.abs(ref_logits).max()))
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        ref = ref_grads
        for key in path:
            ref = ref[key.key]
        error = float(jnp.linalg.norm(g - ref) / jnp.linalg.norm(ref))
        assert error < 1e-4, (jax.tree_util.keystr(path), error)


def test_options_per_backend_and_environment(monkeypatch):
    for platform in ("gpu", "tpu"):
        assert xla.compiler_options(platform) is None
    monkeypatch.setenv(xla.ENV, "xla")
    xla.compiler_options.cache_clear()
    try:
        assert xla.compiler_options("cpu") is None
        monkeypatch.setenv(xla.ENV, "mkl")
        xla.compiler_options.cache_clear()
        with pytest.raises(ValueError, match="FTJAX_CPU_LIBRARY='mkl'"):
            xla.compiler_options("cpu")
    finally:
        monkeypatch.undo()
        xla.compiler_options.cache_clear()


def test_jit_keeps_jax_jit_behaviour():
    double = xla.jit(lambda x, n: x * n, static_argnames=("n",))
    assert float(double(jnp.float32(2.0), n=3)) == 6.0
    assert "mul" in double.lower(jnp.float32(2.0), n=3).as_text()
    # inside the user's own trace it is a nested jit (options belong to the outermost one)
    assert float(jax.jit(lambda x: double(x, n=2) + 1)(jnp.float32(2.0))) == 5.0
    assert jax.eval_shape(lambda x: double(x, n=2),
                          jax.ShapeDtypeStruct((3,), jnp.float32)).shape == (3,)


def test_importing_ftjax_starts_no_backend():
    """Module-level ``xla.jit`` must not start jax: multi-host set-up has to come first."""
    code = ("import ftjax.scoring, ftjax.dense, ftjax.parallel, ftjax.trunk_cache\n"
            "from jax._src import xla_bridge\n"
            "assert not xla_bridge.backends_are_initialized()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# A jitted call whose 32 MB output is new memory each time: its minor page faults per call.
_FAULTS = """
import resource, sys
from ftjax import xla
print(xla.retain_host_memory() if sys.argv[1] == "retain" else "not called")
import jax, jax.numpy as jnp
add = jax.jit(lambda x: x + 1.0)
x = jnp.ones((8, 1024, 1024))
for _ in range(20):  # until the heap holds what a call needs
    add(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    add(x).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def _faults(mode: str, **env: str) -> tuple[str, float]:
    done = _python(_FAULTS, mode, **env)
    assert done.returncode == 0, done.stderr[-2000:]
    called, faults = done.stdout.split()[-2:]
    return called, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc policy")
def test_retained_host_memory_is_not_faulted_again():
    """With glibc's defaults every call maps its output afresh (8192 4-KiB pages of faults);
    retained, the pages of earlier calls are reused. ``FTJAX_MALLOC=system`` keeps glibc's."""
    _, default = _faults("not called")
    assert default > 4000
    called, retained = _faults("retain")
    assert called == "True" and retained < default / 20
    called, system = _faults("retain", FTJAX_MALLOC="system")
    assert called == "False" and system > 4000
    # the command lines set it first: a bad value is their one-line error
    done = subprocess.run([sys.executable, "-m", "ftjax.evaluate"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "FTJAX_MALLOC": "jemalloc"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: FTJAX_MALLOC='jemalloc': expected 'retain' or 'system'"]
