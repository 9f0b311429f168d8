"""``--dtype=bfloat16``: activations and products in bfloat16, parameters, optimizer state and
the loss in float32. Its logits and one training step stay within stated bounds of float32's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftjax import layerwise
from ftjax.models.alexnet import AlexNet
from ftjax.scoring import prepare


@pytest.fixture(scope="module", params=["caffe", "torchvision"])
def setup(request):
    variant = request.param
    params = layerwise.init_params(None, "scratch", 2, variant, jax.random.key(0), size=67)
    # larger weights than Caffe's init so that the logits depend on the input
    params = jax.tree.map(lambda p: p * 8.0 if p.ndim > 1 else p, params)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), np.uint8)
    return variant, params, prepare(jnp.asarray(images), variant, 67)


def test_bfloat16_logits_stay_near_float32(setup):
    variant, params, x = setup
    f32 = AlexNet(num_classes=2, variant=variant).apply({"params": params}, x)
    b16 = AlexNet(num_classes=2, variant=variant, dtype=jnp.bfloat16).apply({"params": params}, x)
    assert b16.dtype == jnp.float32 and f32.dtype == jnp.float32
    spread = float(jnp.std(f32))
    assert spread > 1e-3  # the logits depend on the input
    error = float(jnp.max(jnp.abs(b16 - f32)))
    print(f"{variant}: bfloat16 logits max |diff| {error:.3g}, logit spread {spread:.3g}")
    assert error < 0.1 * spread


def test_one_bfloat16_training_step_stays_near_float32(setup):
    variant, params, x = setup
    batch = {"inputs": x, "labels": jnp.asarray([0, 1] * 4)}
    updates = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        model = AlexNet(num_classes=2, variant=variant, dtype=dtype)
        trainable, frozen = layerwise.split(params, "conv1")
        optimizer = layerwise.make_optimizer("conv1", steps_per_epoch=10)
        step = jax.jit(layerwise.make_train_step(model, optimizer))
        new, state, metrics = step(trainable, frozen, optimizer.init(trainable), batch,
                                   jax.random.key(1))
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves((new, state))
                   if jnp.issubdtype(v.dtype, jnp.floating))
        assert metrics["loss"].dtype == jnp.float32
        updates[dtype] = jax.tree.map(lambda a, b: a - b, new, trainable)
    f32, b16 = (np.concatenate([np.ravel(v) for v in jax.tree.leaves(updates[d])])
                for d in (jnp.float32, jnp.bfloat16))
    relative = np.linalg.norm(b16 - f32) / np.linalg.norm(f32)
    print(f"{variant}: one bfloat16 step's update differs by {relative:.3g} of float32's")
    assert relative < 0.1
