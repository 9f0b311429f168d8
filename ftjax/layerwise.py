"""Layer-wise fine-tuning: which layers train, their starting weights, and Caffe's exact SGD.

The paper tunes AlexNet from the top down: ``tune_from="conv3"`` trains conv3..fc8 and freezes
conv1-conv2; ``"conv1"`` trains every layer from ImageNet weights; ``"scratch"`` trains every layer
from a random Caffe-recipe init. Frozen layers are never differentiated: params are split into a
``trainable`` and a ``frozen`` sub-tree, the loss is differentiated w.r.t. ``trainable`` only and
the optimizer is built for that sub-tree alone, so frozen weights stay bit-identical, their backward
pass is never computed and the optimizer state holds only the tuned layers.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ftjax.models.alexnet import DROPOUT_BEFORE, INIT_BIAS, INIT_STD, LAYERS, AlexNet, input_size

Params = dict[str, dict[str, jax.Array]]
Batch = Mapping[str, jax.Array]
TrainStep = Callable[[Params, Params, optax.OptState, Batch, jax.Array],
                     tuple[Params, optax.OptState, dict[str, jax.Array]]]

# The paper's nine runs, shallowest first: "fc8" trains fc8 only, "conv1" every layer.
TUNE_FROM = ("fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1", "scratch")
SCRATCH = "scratch"
NEW_LAYER = "fc8"  # replaced by a fresh num_classes-way layer in every run


def _check_tune_from(tune_from: str) -> None:
    if tune_from not in TUNE_FROM:
        raise ValueError(f"unknown tune_from {tune_from!r}; expected one of {TUNE_FROM}")


def first_trainable_layer(tune_from: str) -> str:
    """The lowest layer that trains; the frozen trunk (if any) is every layer below it."""
    _check_tune_from(tune_from)
    return LAYERS[0] if tune_from == SCRATCH else tune_from


def trainable_layers(tune_from: str) -> tuple[str, ...]:
    """The layers that train, in network order (``"conv3"`` -> conv3..fc8)."""
    return LAYERS[LAYERS.index(first_trainable_layer(tune_from)):]


def frozen_layers(tune_from: str) -> tuple[str, ...]:
    """The layers that keep their ImageNet weights, in network order; ``[-1]`` is where a cached
    trunk stops (``model.apply(..., stop=frozen_layers(t)[-1])``)."""
    return LAYERS[:LAYERS.index(first_trainable_layer(tune_from))]


# ----------------------------------------------------------------------------- parameters
def init_params(pretrained: Mapping[str, Mapping[str, Any]] | None, tune_from: str,
                num_classes: int, variant: str, rng: jax.Array, *,
                size: int | None = None) -> Params:
    """Starting params of a run: the pretrained trunk plus a fresh fc8, or all random for scratch.

    fc8 (every layer for ``"scratch"``) is drawn with the Caffe recipe (Gaussian ``INIT_STD``,
    constant ``INIT_BIAS``); a given ``rng`` gives the same fc8 at every depth, scratch included.
    ``pretrained`` may hold any fc8 (e.g. ImageNet's 1000-way one): it is ignored, and so is
    ``pretrained`` as a whole for ``"scratch"``. Trunk shapes must match ``variant``'s AlexNet
    built for ``size`` x ``size`` input (default: the variant's own). The Caffe variant's fc6 fits
    ImageNet weights only at 223-230 px; torchvision's adaptive pooling fits them at any size.
    """
    _check_tune_from(tune_from)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    size = input_size(variant) if size is None else size
    shapes = jax.eval_shape(AlexNet(num_classes=num_classes, variant=variant).init, rng,
                            jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))["params"]
    trunk_key, new_key = jax.random.split(rng)
    fresh = _caffe_init(shapes, (NEW_LAYER,), new_key)
    if tune_from == SCRATCH:
        return {**_caffe_init(shapes, LAYERS[:-1], trunk_key), **fresh}
    if pretrained is None:
        raise ValueError(f"tune_from={tune_from!r} fine-tunes ImageNet weights, but no pretrained "
                         "params were given (use ftjax.weights.pretrained(variant), or "
                         "tune_from='scratch')")
    trunk = {}
    for layer in LAYERS:
        if layer == NEW_LAYER:
            continue
        if layer not in pretrained:
            raise ValueError(f"pretrained params lack layer {layer!r} (found "
                             f"{sorted(pretrained)}); expected an AlexNet of variant {variant!r}")
        trunk[layer] = {}
        for leaf, want in shapes[layer].items():
            got = getattr(pretrained[layer].get(leaf), "shape", None)
            if got != want.shape and layer == "fc6" and variant == "caffe" and got and \
                    got[1:] == want.shape[1:]:
                raise ValueError(f"pretrained fc6 takes 6x6 pool5 maps, which the caffe AlexNet "
                                 f"gives only at inputs of 223 to 230 px, not {size}: use "
                                 "input size 227 (--input_size=227), or the torchvision variant "
                                 "(--arch=torchvision), whose adaptive pooling takes any size")
            if got != want.shape:
                raise ValueError(f"pretrained {layer}/{leaf} has shape {got}; the {variant!r} "
                                 f"AlexNet at input {size} needs {want.shape} (weights of the "
                                 "other variant, or another input size?)")
            trunk[layer][leaf] = jnp.asarray(pretrained[layer][leaf], jnp.float32)
    return {**trunk, **fresh}


def _caffe_init(shapes: Mapping[str, Mapping[str, Any]], layers: tuple[str, ...],
                rng: jax.Array) -> Params:
    """Gaussian ``INIT_STD`` kernels, constant ``INIT_BIAS`` biases for ``layers``.

    One flat draw split into layers: XLA compiles a sampler per ``normal`` call (about 0.3 s each
    on CPU), and this keeps it to one.
    """
    sizes = [math.prod(shapes[layer]["kernel"].shape) for layer in layers]
    flat = jax.random.normal(rng, (sum(sizes),), jnp.float32)
    parts = jnp.split(flat, list(itertools.accumulate(sizes))[:-1])
    return {layer: {"kernel": INIT_STD[layer] * part.reshape(shapes[layer]["kernel"].shape),
                    "bias": jnp.full(shapes[layer]["bias"].shape, INIT_BIAS[layer], jnp.float32)}
            for layer, part in zip(layers, parts, strict=True)}


def split(params: Mapping[str, Any], tune_from: str) -> tuple[Params, Params]:
    """``params`` -> ``(trainable, frozen)`` by layer; only ``trainable`` is differentiated."""
    train = set(trainable_layers(tune_from))
    missing = train.difference(params)
    if missing:
        raise ValueError(f"params lack the trainable layers {sorted(missing)}")
    trainable = {k: v for k, v in params.items() if k in train}
    frozen = {k: v for k, v in params.items() if k not in train}
    return trainable, frozen


def merge(trainable: Mapping[str, Any], frozen: Mapping[str, Any]) -> Params:
    """Inverse of :func:`split`: one params tree for ``model.apply``."""
    both = set(trainable).intersection(frozen)
    if both:
        raise ValueError(f"layers {sorted(both)} are both trainable and frozen")
    return {**frozen, **trainable}


# ----------------------------------------------------------------------------- optimizer
@dataclasses.dataclass(frozen=True)
class SGDConfig:
    """Caffe SGD hyper-parameters; the defaults are the paper's (PAPER.md, "Optimiser")."""

    base_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on weights only (Caffe decay_mult 0 on biases)
    bias_lr_mult: float = 2.0
    fc8_lr_mult: float = 10.0  # fc8 when fine-tuning; 1 for scratch
    lr_decay_per_epoch: float = 0.95


def lr_schedule(steps_per_epoch: int, config: SGDConfig = SGDConfig()) -> optax.Schedule:
    """Caffe's "step" policy: ``base_lr * decay ** (step // steps_per_epoch)``."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return optax.exponential_decay(config.base_lr, transition_steps=steps_per_epoch,
                                   decay_rate=config.lr_decay_per_epoch, staircase=True)


def _is_weight(layer: str, leaf: str) -> bool:
    if leaf not in ("kernel", "bias"):
        raise ValueError(f"unexpected parameter {layer}/{leaf}; expected 'kernel' or 'bias'")
    return leaf == "kernel"


def param_labels(params: Mapping[str, Mapping[str, Any]],
                 tune_from: str) -> dict[str, dict[str, str]]:
    """Per-leaf role: ``"weight"``/``"bias"``, or ``"fc8_weight"``/``"fc8_bias"`` for the boosted
    fresh fc8 when fine-tuning (scratch boosts nothing)."""
    _check_tune_from(tune_from)
    return {layer: {leaf: ("fc8_" if layer == NEW_LAYER and tune_from != SCRATCH else "")
                    + ("weight" if _is_weight(layer, leaf) else "bias") for leaf in leaves}
            for layer, leaves in params.items()}


def lr_multipliers(config: SGDConfig = SGDConfig()) -> dict[str, float]:
    """Caffe ``lr_mult`` of each role of :func:`param_labels`."""
    return {"weight": 1.0, "bias": config.bias_lr_mult,
            "fc8_weight": config.fc8_lr_mult,
            "fc8_bias": config.fc8_lr_mult * config.bias_lr_mult}


def make_optimizer(tune_from: str, steps_per_epoch: int,
                   config: SGDConfig = SGDConfig()) -> optax.GradientTransformation:
    """Caffe's SGD for the trainable sub-tree of ``tune_from``.

    Per step: ``v = m*v + lr(t)*lr_mult*(g + wd*decay_mult*w); w -= v``, i.e. weight decay coupled
    to the gradient (weights only), the rate applied before momentum, so a rate drop acts at once
    (``optax.sgd`` puts the rate after momentum and differs right after each drop).
    """
    _check_tune_from(tune_from)
    mults = lr_multipliers(config)

    def labels(params):
        return param_labels(params, tune_from)

    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=lambda p: jax.tree.map(
            lambda role: role.endswith("weight"), labels(p))),
        optax.partition({role: optax.scale(m) for role, m in mults.items()}, labels),
        optax.scale_by_schedule(lr_schedule(steps_per_epoch, config)),
        optax.trace(decay=config.momentum),
        optax.scale(-1.0),
    )


# ----------------------------------------------------------------------------- loss and step
def cached_start(tune_from: str, variant: str) -> str:
    """The block a training step starts from when the frozen trunk below it is cached.

    Usually the first trainable layer. But features cached in inference mode lack the dropout
    Caffe keeps applying to frozen layers in training, and dropout inside the frozen range changes
    what the layers above it see: so the step starts at the first frozen block with input dropout
    (``DROPOUT_BEFORE``) when there is one (Caffe ``fc8``: the step runs the frozen fc7 with fc6's
    dropout; its parameters are not differentiated). ``"conv1"``: nothing can be cached.
    """
    first = first_trainable_layer(tune_from)
    with_dropout = [layer for layer in frozen_layers(tune_from)
                    if layer in DROPOUT_BEFORE[variant]]
    return with_dropout[0] if with_dropout else first


def make_loss_fn(model: AlexNet, *, start: str = "conv1",
                 prepare: Callable[[jax.Array], jax.Array] | None = None
                 ) -> Callable[[Params, Params, Batch, jax.Array], tuple[jax.Array, jax.Array]]:
    """``loss(trainable, frozen, batch, rng) -> (mean softmax cross-entropy, logits)``, training.

    ``batch = {"inputs", "labels"}`` (integer labels). ``start="conv1"``: inputs are images, passed
    through ``prepare`` first (e.g. ``ftjax.scoring.prepare`` for uint8 patches; ``None`` = already
    network input). ``start=cached_start(t, variant)``: inputs are the cached output of the block
    before it (``model.apply(..., stop=...)``, inference mode). Dropout draws from ``rng``; each
    block's masks depend on the block alone, so both forms compute the same loss.
    """
    if start not in LAYERS:
        raise ValueError(f"unknown start layer {start!r}; expected one of {LAYERS}")
    if prepare is not None and start != LAYERS[0]:
        raise ValueError(f"prepare applies to images, but start={start!r} takes cached features")
    def loss_fn(trainable: Params, frozen: Params, batch: Batch, rng: jax.Array):
        x = batch["inputs"]
        if prepare is not None:
            x = prepare(x)
        logits = model.apply({"params": merge(trainable, frozen)}, x, train=True, start=start,
                             rngs={"dropout": rng})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()
        return loss, logits

    return loss_fn


def make_train_step(model: AlexNet, optimizer: optax.GradientTransformation, *,
                    start: str = "conv1",
                    prepare: Callable[[jax.Array], jax.Array] | None = None,
                    axis_name: str | None = None) -> TrainStep:
    """A pure step ``(trainable, frozen, opt_state, batch, rng) -> (trainable, opt_state, metrics)``
    to wrap in ``jax.jit`` (``start``/``prepare`` as in :func:`make_loss_fn`).

    Only ``trainable`` is differentiated and updated; ``metrics`` holds the batch ``loss`` and
    ``accuracy``. ``axis_name``: under ``jax.pmap``, the mapped axis to average gradients and
    metrics over (not needed with ``jit`` and sharded arrays, where the mean is global already).
    """
    grad_fn = jax.value_and_grad(make_loss_fn(model, start=start, prepare=prepare), has_aux=True)

    def step(trainable: Params, frozen: Params, opt_state: optax.OptState, batch: Batch,
             rng: jax.Array):
        if axis_name is not None:  # each device's shard of the batch gets its own dropout masks
            rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
        (loss, logits), grads = grad_fn(trainable, frozen, batch, rng)
        metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["labels"])}
        if axis_name is not None:
            grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, metrics

    return step
