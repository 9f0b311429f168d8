"""Candidate scoring: a candidate's score is the mean class probability over its K patches.

Patches arrive as stored (uint8, native size); resizing to the network input and the variant's
preprocessing run inside the jitted call, on the device. One compiled function scores a chunk of
candidates with ``jax.vmap``; chunks are padded to one shape so a whole test split compiles once,
and each chunk is split over every local device (the parameters replicated, the candidates
sharded over a ``('data',)`` mesh). :class:`Scorer` is what the trainer hands an application at
test time: the trained network, candidate scoring, and the pieces for dense inference.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ftjax import xla
from ftjax.models.alexnet import AlexNet, input_size
from ftjax.models.preprocess import preprocess

ApplyFn = Callable[[Any, jax.Array], jax.Array]
# Patches per compiled call when chunk_size is not given: bounds activation memory (about 3 MB
# per 227x227 AlexNet image in float32) whatever K is.
PATCHES_PER_CHUNK = 512


def prepare(patches: jax.Array, variant: str, size: int | None = None) -> jax.Array:
    """uint8 NHWC patches (1 or 3 channels, any size) -> float32 network input ``[N, s, s, 3]``.

    Bilinear resize to ``size`` (default: the variant's input side) in float, without rounding
    back to uint8 (``jax.image.resize``, antialiased when shrinking, like PIL), then
    ``ftjax.models.preprocess``. The train step and :func:`score_candidates` both use it.
    """
    if patches.dtype != jnp.uint8:
        raise ValueError(f"expected uint8 patches, got dtype {patches.dtype}")
    if patches.ndim != 4 or patches.shape[-1] not in (1, 3):
        raise ValueError(f"expected NHWC patches with 1 or 3 channels, got shape {patches.shape}")
    size = input_size(variant) if size is None else size
    n, h, w, ch = patches.shape
    x = patches.astype(jnp.float32)
    if (h, w) != (size, size):
        x = jax.image.resize(x, (n, size, size, ch), method="bilinear")
    return preprocess(x, variant)


@functools.partial(xla.jit, static_argnames=("apply_fn", "variant", "size"))
def _score_chunk(apply_fn: ApplyFn, variables: Any, chunk: jax.Array, variant: str,
                 size: int | None) -> jax.Array:
    def one_candidate(patches):  # [K, H, W, ch] -> [num_classes]
        logits = apply_fn(variables, prepare(patches, variant, size))
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1).mean(axis=0)

    return jax.vmap(one_candidate)(chunk)


def _mesh(devices: Any) -> Mesh:
    return Mesh(np.asarray(jax.local_devices() if devices is None else devices), ("data",))


def score_candidates(apply_fn: ApplyFn | AlexNet, variables: Any,
                     patches: np.ndarray | jax.Array, *, variant: str = "caffe",
                     size: int | None = None, chunk_size: int | None = None,
                     devices: Any = None) -> np.ndarray:
    """Mean softmax probabilities per candidate: ``[C, K, H, W, ch]`` uint8 -> ``[C, classes]``.

    ``score_candidates(model, params, patches)`` with an ``AlexNet`` and its params tree is the
    short form (the variant is the model's); the general form follows.

    ``apply_fn(variables, images) -> logits`` runs the network on preprocessed NHWC float32 input,
    e.g. ``model.apply`` with ``variables={"params": params}``. It is a static argument of the
    compiled chunk: pass the same object each time (not a fresh lambda) to reuse the compilation.
    ``chunk_size`` candidates go through each call (default: about ``PATCHES_PER_CHUNK`` patches),
    rounded up to a multiple of the devices (default: every local device), over which each chunk
    is sharded; the last chunk is padded, so one shape is compiled per (chunk, K, H, W, ch).
    For 2-class tasks the positive score is column 1. No candidates (``C == 0``) gives an empty
    ``[0, classes]`` result, so a case without candidates needs no special handling; ``K == 0``
    is an error.
    """
    if isinstance(apply_fn, AlexNet):
        apply_fn, variables, variant = apply_fn.apply, {"params": variables}, apply_fn.variant
    mesh = _mesh(devices)
    return _score(apply_fn, jax.device_put(variables, NamedSharding(mesh, P())), patches,
                  variant, size, chunk_size, mesh)


def _score(apply_fn: ApplyFn, variables: Any, patches: np.ndarray | jax.Array, variant: str,
           size: int | None, chunk_size: int | None, mesh: Mesh) -> np.ndarray:
    if patches.ndim != 5 or patches.shape[-1] not in (1, 3):
        raise ValueError("expected candidate patches [C, K, H, W, ch] with ch 1 or 3, got shape "
                         f"{patches.shape}")
    if patches.dtype != np.uint8:
        raise ValueError(f"expected uint8 patches, got dtype {patches.dtype}")
    num, k = patches.shape[:2]
    if k == 0:
        raise ValueError(f"every candidate needs at least one patch; got shape {patches.shape}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_dev = mesh.devices.size
    chunk = max(1, min(chunk_size or max(1, PATCHES_PER_CHUNK // k), num))
    chunk = -(-chunk // n_dev) * n_dev
    sharded = NamedSharding(mesh, P("data"))
    score = functools.partial(_score_chunk, apply_fn, variables, variant=variant, size=size)
    if num == 0:
        shape = jax.eval_shape(score, jax.ShapeDtypeStruct((n_dev, *patches.shape[1:]), np.uint8))
        return np.zeros((0, *shape.shape[1:]), shape.dtype)
    outputs = []
    for lo in range(0, num, chunk):
        part = np.asarray(patches[lo:lo + chunk])
        if part.shape[0] < chunk:  # pad with copies of the last candidate, dropped below
            part = np.concatenate([part, np.repeat(part[-1:], chunk - part.shape[0], axis=0)])
        outputs.append(score(jax.device_put(part, sharded)))  # asynchronous; gathered below
    return np.concatenate([np.asarray(o) for o in outputs])[:num]


class Scorer:
    """The trained network as the trainer hands it to an application's test.

    ``scorer(patches)`` scores candidates (``[C, K, h, w, c]`` uint8 -> mean class probabilities
    ``[C, classes]``) and ``scorer.score(source)`` does so for a whole ``CandidateSource``, loading
    ``chunk`` candidates at a time; both shard every chunk over the local devices. For an
    application's own dense inference it exposes ``model``, ``params``, ``prepare`` (uint8 patches
    -> network input) and ``logits`` (network input -> logits, jitted).
    """

    def __init__(self, model: AlexNet, params: Any, *, size: int | None = None, chunk: int = 64,
                 devices: Any = None):
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.model, self.params, self.chunk = model, params, chunk
        self.variant, self.num_classes = model.variant, model.num_classes
        self.size = input_size(model.variant) if size is None else size
        self.mesh = _mesh(devices)
        self._variables = jax.device_put({"params": params}, NamedSharding(self.mesh, P()))
        self._logits = xla.jit(model.apply)

    @property
    def replicated_params(self) -> Any:
        """The parameters, replicated over the scorer's devices (for an app's own jitted code)."""
        return self._variables["params"]

    def prepare(self, patches: jax.Array) -> jax.Array:
        """uint8 NHWC patches -> the network's float input (resize + preprocessing)."""
        return prepare(patches, self.variant, self.size)

    def logits(self, images: jax.Array) -> jax.Array:
        """Logits of prepared network input ``[N, size, size, 3]`` (inference mode)."""
        return self._logits(self._variables, images)

    def __call__(self, patches: np.ndarray | jax.Array) -> np.ndarray:
        return _score(self.model.apply, self._variables, patches, self.variant, self.size,
                      self.chunk, self.mesh)

    def score(self, source: Any) -> np.ndarray:
        """Mean class probabilities of every candidate of ``source`` (``len`` and
        ``patches(indices)``), read ``chunk`` candidates at a time."""
        out = [self(source.patches(np.arange(lo, min(len(source), lo + self.chunk))))
               for lo in range(0, len(source), self.chunk)]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)
