"""Layer-wise fine-tuning: layer split, starting params, Caffe SGD, train step, step cost."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ftjax import layerwise as lw
from ftjax.models.alexnet import INIT_BIAS, INIT_STD, LAYERS, AlexNet
from ftjax.scoring import prepare

# Compiling at XLA backend level 0 halves CPU compile time; cost analysis and results are unchanged.
FAST_COMPILE = {"xla_backend_optimization_level": 0}
SMALL = 67  # a Caffe AlexNet input small enough for CPU tests (conv5 output 1x1, fc6 takes 256)


# ----------------------------------------------------------------------------- layer split
@pytest.mark.parametrize("tune_from, trainable", [
    ("fc8", ("fc8",)),
    ("conv3", ("conv3", "conv4", "conv5", "fc6", "fc7", "fc8")),
    ("conv1", LAYERS),
    ("scratch", LAYERS),
])
def test_trainable_and_frozen_layers(tune_from, trainable):
    assert lw.trainable_layers(tune_from) == trainable
    assert lw.first_trainable_layer(tune_from) == trainable[0]
    assert lw.frozen_layers(tune_from) + trainable == LAYERS


def test_split_merge_round_trip():
    params = {layer: {"kernel": np.full(2, i), "bias": np.zeros(1)}
              for i, layer in enumerate(LAYERS)}
    trainable, frozen = lw.split(params, "conv4")
    assert sorted(trainable) == ["conv4", "conv5", "fc6", "fc7", "fc8"]
    assert sorted(frozen) == ["conv1", "conv2", "conv3"]
    assert lw.merge(trainable, frozen) == params
    with pytest.raises(ValueError, match="both trainable and frozen"):
        lw.merge(trainable, {**frozen, "fc8": params["fc8"]})


def test_bad_tune_from():
    for fn in (lw.trainable_layers, lw.frozen_layers, lw.first_trainable_layer):
        with pytest.raises(ValueError, match="tune_from"):
            fn("conv6")
    with pytest.raises(ValueError, match="tune_from"):
        lw.make_optimizer("fc9", 10)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lw.make_optimizer("fc8", 0)


# ----------------------------------------------------------------------------- init_params
@pytest.fixture(scope="module")
def imagenet_like():
    """A full-size Caffe AlexNet tree with a 1000-way fc8, standing in for ImageNet weights."""
    return lw.init_params(None, "scratch", 1000, "caffe", jax.random.key(0))


def test_scratch_init_follows_caffe_recipe(imagenet_like):
    shapes = jax.eval_shape(AlexNet(1000).init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 227, 227, 3), jnp.float32))["params"]
    assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(np.shape, imagenet_like)
    for layer in LAYERS:
        kernel = np.asarray(imagenet_like[layer]["kernel"])
        assert abs(kernel.std() / INIT_STD[layer] - 1) < 0.03, layer
        assert abs(kernel.mean()) < 0.03 * INIT_STD[layer], layer
        np.testing.assert_array_equal(imagenet_like[layer]["bias"], np.float32(INIT_BIAS[layer]))


def test_scratch_init_at_another_input_size():
    params = lw.init_params(None, "scratch", 3, "caffe", jax.random.key(0), size=SMALL)
    assert params["fc6"]["kernel"].shape == (256, 4096)  # 67 -> pool5 of 1x1x256
    assert params["fc8"]["kernel"].shape == (4096, 3)


def test_finetune_init_keeps_trunk_and_draws_fresh_fc8(imagenet_like):
    params = lw.init_params(imagenet_like, "conv3", 2, "caffe", jax.random.key(1))
    for layer in LAYERS[:-1]:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(params[layer][leaf], imagenet_like[layer][leaf])
    fc8 = params["fc8"]
    assert fc8["kernel"].shape == (4096, 2) and fc8["bias"].shape == (2,)
    assert abs(float(fc8["kernel"].std()) / 0.01 - 1) < 0.05
    np.testing.assert_array_equal(fc8["bias"], 0.0)
    # The starting point does not depend on the depth: only the optimizer does.
    other = lw.init_params(imagenet_like, "fc8", 2, "caffe", jax.random.key(1))
    np.testing.assert_array_equal(other["fc8"]["kernel"], fc8["kernel"])


def test_init_params_errors(imagenet_like):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="tune_from"):
        lw.init_params(imagenet_like, "conv0", 2, "caffe", key)
    with pytest.raises(ValueError, match="no pretrained params"):
        lw.init_params(None, "conv1", 2, "caffe", key)
    with pytest.raises(ValueError, match="lack layer 'fc7'"):
        lw.init_params({k: v for k, v in imagenet_like.items() if k != "fc7"}, "fc8", 2, "caffe",
                       key)
    ungrouped = {**imagenet_like, "conv2": {"kernel": np.zeros((5, 5, 96, 256), np.float32),
                                            "bias": np.zeros(256, np.float32)}}
    with pytest.raises(ValueError, match=r"conv2/kernel has shape \(5, 5, 96, 256\)"):
        lw.init_params(ungrouped, "fc6", 2, "caffe", key)
    with pytest.raises(ValueError, match="variant"):
        lw.init_params(imagenet_like, "fc6", 2, "alexnet", key)
    with pytest.raises(ValueError, match=r"fc6 takes 6x6 pool5 maps.*not 67.*"
                                         r"--input_size=227.*--arch=torchvision"):
        lw.init_params(imagenet_like, "fc6", 2, "caffe", key, size=67)


# ----------------------------------------------------------------------------- optimizer
def caffe_sgd(params, grads, layers, lr_mult, base_lr, momentum, weight_decay, gamma,
              steps_per_epoch):
    """Caffe's SGDSolver in float64: Regularize (L2, weights only), ComputeUpdateValue, Update,
    with the "step" learning-rate policy (stepsize = one epoch)."""
    w = {layer: {k: np.float64(v) for k, v in params[layer].items()} for layer in layers}
    history = jax.tree.map(np.zeros_like, w)
    for it, g in enumerate(grads):
        rate = base_lr * gamma ** (it // steps_per_epoch)
        for layer in layers:
            for leaf in ("kernel", "bias"):
                decay_mult = 1.0 if leaf == "kernel" else 0.0
                diff = g[layer][leaf] + weight_decay * decay_mult * w[layer][leaf]
                history[layer][leaf] = (momentum * history[layer][leaf]
                                        + rate * lr_mult(layer, leaf) * diff)
                w[layer][leaf] = w[layer][leaf] - history[layer][leaf]
    return w


def paper_lr_mult(layer, leaf):  # PAPER.md: tuned 0.001, new fc8 0.01; bias twice the weight
    return (10.0 if layer == "fc8" else 1.0) * (2.0 if leaf == "bias" else 1.0)


def scratch_lr_mult(layer, leaf):  # PAPER.md: scratch 0.001 everywhere; bias twice the weight
    return 2.0 if leaf == "bias" else 1.0


CUSTOM = lw.SGDConfig(base_lr=0.01, momentum=0.8, weight_decay=0.3, bias_lr_mult=3.0,
                      fc8_lr_mult=5.0, lr_decay_per_epoch=0.5)


def custom_lr_mult(layer, leaf):
    return (5.0 if layer == "fc8" else 1.0) * (3.0 if leaf == "bias" else 1.0)


@pytest.mark.parametrize("tune_from, config, lr_mult, hyper", [
    ("conv4", lw.SGDConfig(), paper_lr_mult, (0.001, 0.9, 5e-4, 0.95)),
    ("scratch", lw.SGDConfig(), scratch_lr_mult, (0.001, 0.9, 5e-4, 0.95)),
    ("fc7", CUSTOM, custom_lr_mult, (0.01, 0.8, 0.3, 0.5)),
    ("scratch", CUSTOM, lambda layer, leaf: 3.0 if leaf == "bias" else 1.0, (0.01, 0.8, 0.3, 0.5)),
])
def test_optimizer_is_caffe_sgd(tune_from, config, lr_mult, hyper):
    rng = np.random.default_rng(0)
    params = {layer: {"kernel": rng.standard_normal((i + 2, 3)).astype(np.float32),
                      "bias": rng.standard_normal(3).astype(np.float32)}
              for i, layer in enumerate(LAYERS)}
    steps, steps_per_epoch = 7, 3  # two learning-rate drops
    grads = [jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32), params)
             for _ in range(steps)]
    trainable, _ = lw.split(params, tune_from)
    opt = lw.make_optimizer(tune_from, steps_per_epoch, config)
    state = opt.init(trainable)
    for g in grads:
        updates, state = opt.update({k: g[k] for k in trainable}, state, trainable)
        trainable = optax.apply_updates(trainable, updates)
    want = caffe_sgd(params, grads, lw.trainable_layers(tune_from), lr_mult, *hyper,
                     steps_per_epoch)
    assert set(trainable) == set(want)
    for layer in want:
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(trainable[layer][leaf], want[layer][leaf], rtol=1e-6,
                                       atol=1e-6, err_msg=f"{layer}/{leaf}")


# ----------------------------------------------------------------------------- train step
@pytest.fixture(scope="module")
def small_net():
    """Caffe AlexNet built at a small input: the real module, cheap enough for CPU steps."""
    model = AlexNet(num_classes=3)
    shapes = jax.eval_shape(model.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, SMALL, SMALL, 3), jnp.float32))["params"]
    rng = np.random.default_rng(0)
    # Unit-gain weights (not Caffe's tiny init) and non-zero biases, so every leaf gets a
    # gradient well above float32 rounding.
    params = {layer: {"kernel": (rng.standard_normal(s["kernel"].shape)
                                 / np.sqrt(np.prod(s["kernel"].shape[:-1]))).astype(np.float32),
                      "bias": 0.1 * rng.standard_normal(s["bias"].shape).astype(np.float32)}
              for layer, s in shapes.items()}
    batch = {"inputs": rng.integers(0, 256, (4, 50, 50, 3), dtype=np.uint8),
             "labels": np.array([0, 1, 2, 1])}
    return model, params, batch


def test_first_step_is_caffe_update_of_the_full_gradient(small_net):
    """One step (run eagerly, so the forward pass is the reference's op for op and no ReLU kink
    flips under float rounding) = Caffe's first update, ``w -= lr*lr_mult*(g + wd*w)``, where
    ``g`` comes from differentiating the whole params tree."""
    model, params, batch = small_net
    tune_from = "conv3"
    prep = functools.partial(prepare, variant="caffe", size=SMALL)
    opt = lw.make_optimizer(tune_from, steps_per_epoch=2)
    rng = jax.random.key(1)

    def full_loss(p):
        logits = model.apply({"params": p}, prep(batch["inputs"]), train=True,
                             rngs={"dropout": rng})
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()

    full_grads = jax.grad(full_loss)(params)
    for layer in lw.frozen_layers(tune_from):  # freezing really withholds a gradient
        assert float(jnp.abs(full_grads[layer]["kernel"]).max()) > 0

    trainable, frozen = lw.split(params, tune_from)
    step = lw.make_train_step(model, opt, prepare=prep)
    new, _, metrics = step(trainable, frozen, opt.init(trainable), batch, rng)
    np.testing.assert_allclose(metrics["loss"], full_loss(params), rtol=1e-6)
    for layer in lw.trainable_layers(tune_from):
        for leaf, mult in (("kernel", 1.0), ("bias", 2.0)):
            mult *= 10.0 if layer == "fc8" else 1.0
            old = params[layer][leaf]
            decay = 5e-4 * old if leaf == "kernel" else 0.0
            np.testing.assert_allclose(new[layer][leaf] - old,
                                       -0.001 * mult * (full_grads[layer][leaf] + decay),
                                       rtol=1e-4, atol=np.spacing(np.abs(old).max()),
                                       err_msg=f"{layer}/{leaf}")


def test_jitted_steps_leave_frozen_layers_bit_identical(small_net):
    model, params, batch = small_net
    tune_from = "conv3"
    prep = functools.partial(prepare, variant="caffe", size=SMALL)
    opt = lw.make_optimizer(tune_from, steps_per_epoch=2)
    step = jax.jit(lw.make_train_step(model, opt, prepare=prep), compiler_options=FAST_COMPILE)
    trainable, frozen = lw.split(params, tune_from)
    opt_state = opt.init(trainable)
    for i in range(4):
        trainable, opt_state, metrics = step(trainable, frozen, opt_state, batch,
                                             jax.random.key(i))
        assert np.isfinite(metrics["loss"]) and 0 <= metrics["accuracy"] <= 1
    after = lw.merge(trainable, frozen)
    for layer in LAYERS:
        for leaf in ("kernel", "bias"):
            same = np.array_equal(after[layer][leaf], params[layer][leaf])
            assert same == (layer in lw.frozen_layers(tune_from)), f"{layer}/{leaf}"
    # Optimizer state: one momentum buffer per trainable leaf, nothing for frozen layers.
    state_size = sum(a.size for a in jax.tree.leaves(opt_state) if a.ndim > 0)
    assert state_size == sum(a.size for a in jax.tree.leaves(trainable))


@pytest.mark.parametrize("variant, tune_from, start", [
    ("caffe", "fc8", "fc7"),  # fc6's dropout sits inside the frozen range: the step runs fc7
    ("caffe", "fc7", "fc7"),
    ("caffe", "fc6", "fc6"),
    ("torchvision", "fc8", "fc6"),
])
def test_step_on_cached_trunk_is_the_full_step_dropout_included(small_net, variant, tune_from,
                                                                start):
    """With dropout on (0.5, as in training), a step on cached trunk features draws the same
    masks and makes the same update as the step on images: caching is only a speed-up."""
    _, caffe_params, batch = small_net
    model = AlexNet(num_classes=3, variant=variant)
    params = caffe_params if variant == "caffe" else lw.init_params(
        None, "scratch", 3, variant, jax.random.key(4), size=SMALL)
    assert lw.cached_start(tune_from, variant) == start
    prep = functools.partial(prepare, variant=variant, size=SMALL)
    opt = lw.make_optimizer(tune_from, steps_per_epoch=10)
    trainable, frozen = lw.split(params, tune_from)
    state = opt.init(trainable)
    rng = jax.random.key(2)
    want, _, want_metrics = jax.jit(lw.make_train_step(model, opt, prepare=prep))(
        trainable, frozen, state, batch, rng)
    features = model.apply({"params": params}, prep(batch["inputs"]),
                           stop=LAYERS[LAYERS.index(start) - 1])  # inference mode, as cached
    cached = jax.jit(lw.make_train_step(model, opt, start=start))
    got, _, got_metrics = cached(trainable, frozen, state, {**batch, "inputs": features}, rng)
    np.testing.assert_allclose(got_metrics["loss"], want_metrics["loss"], rtol=1e-5)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    # Dropout really acted: without it the update differs.
    plain, _, _ = jax.jit(lw.make_train_step(AlexNet(3, variant, dropout_rate=0.0), opt,
                                             prepare=prep))(trainable, frozen, state, batch, rng)
    assert not np.allclose(plain["fc8"]["kernel"], want["fc8"]["kernel"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant, rate, dropped", [
    ("caffe", 0.5, 0.5),        # Caffe: fc7's dropout belongs to the frozen trunk, still on
    ("caffe", 0.0, 0.0),
    ("torchvision", 0.5, 0.0),  # torchvision: no dropout between fc7 and fc8
])
def test_cached_features_keep_the_trunk_dropout(variant, rate, dropped):
    """Training fc8 on cached fc7 features drops the same units Caffe's drop7 would."""
    model = AlexNet(num_classes=2, variant=variant, dropout_rate=rate)
    features = jax.random.uniform(jax.random.key(0), (1, 4096), minval=0.5, maxval=1.5)
    trainable = {"fc8": {"kernel": 0.01 * jax.random.normal(jax.random.key(1), (4096, 2)),
                         "bias": jnp.zeros(2)}}
    loss_fn = lw.make_loss_fn(model, start="fc8")
    grads = jax.grad(lambda t: loss_fn(t, {}, {"inputs": features, "labels": jnp.array([1])},
                                       jax.random.key(2))[0])(trainable)
    zero_rows = float(jnp.mean(jnp.all(grads["fc8"]["kernel"] == 0, axis=1)))
    assert abs(zero_rows - dropped) < 0.05


def test_pmap_step_averages_over_devices():
    """Under ``jax.pmap`` with ``axis_name``, two half batches make the single-device step."""
    if jax.local_device_count() < 2:
        pytest.skip("needs 2 devices (tests/conftest.py simulates 8 CPU devices)")
    model = AlexNet(num_classes=2, dropout_rate=0.0)
    rng = np.random.default_rng(4)
    trainable = {"fc8": {"kernel": rng.standard_normal((4096, 2)).astype(np.float32) * 0.01,
                         "bias": np.zeros(2, np.float32)}}
    batch = {"inputs": rng.uniform(0, 2, (4, 4096)).astype(np.float32),
             "labels": np.array([0, 1, 1, 0])}
    opt = lw.make_optimizer("fc8", steps_per_epoch=5)
    state = opt.init(trainable)
    key = jax.random.key(0)
    want, _, want_metrics = jax.jit(lw.make_train_step(model, opt, start="fc8"))(
        trainable, {}, state, batch, key)
    step = jax.pmap(lw.make_train_step(model, opt, start="fc8", axis_name="d"), axis_name="d",
                    in_axes=(None, None, None, 0, None), devices=jax.local_devices()[:2])
    halves = jax.tree.map(lambda a: a.reshape(2, 2, *a.shape[1:]), batch)
    got, _, metrics = step(trainable, {}, state, halves, key)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g[0], w, rtol=1e-5, atol=1e-8), got, want)
    np.testing.assert_allclose(metrics["loss"][0], want_metrics["loss"], rtol=1e-5)


def test_loss_fn_rejects_prepare_on_cached_features():
    with pytest.raises(ValueError, match="cached features"):
        lw.make_loss_fn(AlexNet(2), start="fc6", prepare=lambda x: x)


def test_step_cost_grows_with_depth_from_one_forward_pass():
    """XLA's FLOP count of the compiled step: fc8-only costs one forward pass, each deeper layer
    adds its backward pass (frozen layers are never differentiated)."""
    model, batch = AlexNet(num_classes=2), 2
    sds = jax.ShapeDtypeStruct
    shapes = jax.eval_shape(model.init, jax.random.key(0), sds((1, 227, 227, 3), jnp.float32))
    params = shapes["params"]
    images = sds((batch, 227, 227, 3), jnp.float32)

    def flops(fn, *args):
        compiled = jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)
        return compiled.cost_analysis()["flops"]

    forward = flops(lambda p, x: model.apply({"params": p}, x), params, images)
    cost = {}
    for tune_from in lw.TUNE_FROM[:-1]:  # scratch trains what conv1 trains
        trainable, frozen = lw.split(params, tune_from)
        opt = lw.make_optimizer(tune_from, steps_per_epoch=10)
        step = lw.make_train_step(model, opt)
        cost[tune_from] = flops(step, trainable, frozen, jax.eval_shape(opt.init, trainable),
                                {"inputs": images, "labels": sds((batch,), jnp.int32)},
                                jax.random.key(0)) / forward
    assert 1.0 <= cost["fc8"] < 1.02
    ratios = list(cost.values())
    assert all(a < b for a, b in zip(ratios, ratios[1:], strict=False)), cost
    assert 2.5 < cost["conv1"] < 3.5, cost
