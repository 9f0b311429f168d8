"""Every pixel of an image classified by the patch centred on it (``cimt``, PAPER.md section 4).

The patch of pixel (y, x) is ``padded[y:y + p, x:x + p]`` of the image edge-padded by
``p // 2`` before and ``p - 1 - p // 2`` after (:func:`patches_at`; training patches are cut the
same way), resized to the network input ``n`` by the scorer. Two methods give the map:

``patches``        every pixel's patch through the network, batched, chunked and sharded by the
                   scorer: exact, one network pass per pixel.
``convolutional``  when ``n = s * p`` for an integer ``s`` dividing AlexNet's stride 32: a tile of
                   the image is resized by ``s`` once and the network runs over it as a fully
                   convolutional net (conv1..conv5 on the whole tile, fc6 as a convolution with
                   the pool5 window of one patch, torchvision's adaptive pooling folded into
                   fc6's kernel, fc7 and fc8 as 1x1), which scores every window at stride 32,
                   i.e. every ``32 / s``-th pixel; ``(32 / s)**2`` shifted passes stitch the full
                   map (shift-and-stitch). The convolutions are shared between neighbouring
                   pixels; fc6..fc8 still run once per pixel. It approximates the patch method
                   only where a patch's own border mattered: zero padding inside conv1..conv5 and
                   the resize's edge clamp see the neighbouring image instead (and Caffe's
                   ceil-mode pooling a full last window); ``tests/test_dense.py`` measures the
                   difference.
``auto``           convolutional when ``n / p`` allows it, else patches.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ftjax import xla
from ftjax.models.alexnet import POOL5, STRIDE, AlexNet, adaptive_pool_matrix
from ftjax.models.preprocess import preprocess

METHODS = ("auto", "convolutional", "patches")
TILE = 64  # pixels per side of one convolutional tile (a multiple of every 32 / s)


def padded(image: np.ndarray, patch: int) -> np.ndarray:
    """``image`` [H, W] edge-padded so that pixel (y, x)'s patch is ``[y:y + p, x:x + p]``."""
    before = patch // 2
    return np.pad(image, ((before, patch - 1 - before),) * 2, mode="edge")


def patches_at(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """uint8 grey patches [n, p, p] centred on the pixels (rows[i], cols[i]) of ``image``."""
    view = np.lib.stride_tricks.sliding_window_view(padded(image, patch), (patch, patch))
    return view[np.asarray(rows, np.int64), np.asarray(cols, np.int64)]


def conv_scale(size: int, patch: int) -> int | None:
    """The integer ``s`` with ``size == s * patch`` and ``32 % s == 0``, or None."""
    s, rest = divmod(size, patch)
    return s if rest == 0 and s >= 1 and STRIDE % s == 0 else None


def choose(method: str, size: int, patch: int) -> str:
    """The method ``method`` stands for at this input and patch size (errors name the fix)."""
    if method not in METHODS:
        raise ValueError(f"dense method {method!r} is not one of {METHODS}")
    possible = conv_scale(size, patch) is not None
    if method == "auto":
        return "convolutional" if possible else "patches"
    if method == "convolutional" and not possible:
        raise ValueError(f"dense=convolutional needs the network input ({size}) to be s x the "
                         f"patch size ({patch}) with s in 1, 2, 4, ..., 32; use dense=patches "
                         "or auto, or another --input_size")
    return method


def probability_map(scorer: Any, image: np.ndarray, patch: int, method: str = "auto",
                    tile: int = TILE) -> np.ndarray:
    """Class probabilities [H, W, classes] of every pixel of the grey uint8 ``image`` [H, W]."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a grey uint8 image [H, W], got {image.dtype} {image.shape}")
    if choose(method, scorer.size, patch) == "patches":
        return _by_patches(scorer, image, patch)
    return _by_convolution(scorer, image, patch, tile)


def _by_patches(scorer: Any, image: np.ndarray, patch: int) -> np.ndarray:
    h, w = image.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    out = []
    step = max(1, scorer.chunk) * 16
    for lo in range(0, h * w, step):
        grey = patches_at(image, rows[lo:lo + step], cols[lo:lo + step], patch)
        out.append(scorer(grey[:, None, :, :, None]))  # K = 1 patch per pixel
    return np.concatenate(out).reshape(h, w, -1)


# ----------------------------------------------------------------------------- convolutional
def fc_kernels(params: Any, variant: str, pool5: int) -> tuple[jax.Array, ...]:
    """fc6 as a [pool5, pool5, 256, 4096] convolution kernel (torchvision's adaptive pooling
    from ``pool5`` to 6 folded in: both are linear), fc7 and fc8 kernels, and the biases."""
    k6 = jnp.asarray(params["fc6"]["kernel"])
    side = int(round((k6.shape[0] // 256) ** 0.5))
    k6 = k6.reshape(side, side, 256, -1)
    if variant == "torchvision" and pool5 != POOL5:
        a = jnp.asarray(adaptive_pool_matrix(pool5, POOL5))
        k6 = jnp.einsum("ia,jb,ijcf->abcf", a, a, k6)
    elif side != pool5:
        raise ValueError(f"fc6 takes {side}x{side} pool5 maps but a patch gives {pool5}x{pool5}")
    return (k6, params["fc6"]["bias"], params["fc7"]["kernel"], params["fc7"]["bias"],
            params["fc8"]["kernel"], params["fc8"]["bias"])


@functools.cache
def pool5_side(model: AlexNet, size: int) -> int:
    """The pool5 side of one ``size`` x ``size`` input before any adaptive pooling."""
    shape = jax.eval_shape(lambda x: model.apply(
        model.init(jax.random.PRNGKey(0), x), x, method=AlexNet.feature_map),
        jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    return shape.shape[1]


def dense_logits(model: AlexNet, params: Any, x: jax.Array, pool5: int) -> jax.Array:
    """Logits [N, a, b, classes] of every ``size``-window at stride 32 of preprocessed input
    ``x`` [N, size + 32 (a - 1), size + 32 (b - 1), 3]; window (0, 0) of an input of exactly
    the network's size is the network's own output."""
    k6, b6, k7, b7, k8, b8 = fc_kernels(params, model.variant, pool5)
    features = model.apply({"params": params}, x, method=AlexNet.feature_map)
    h = jax.lax.conv_general_dilated(features, k6.astype(features.dtype), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + b6
    h = jax.nn.relu(h)
    h = jax.nn.relu(h @ k7 + b7)
    return h @ k8 + b8


@functools.partial(xla.jit, static_argnames=("model", "scale", "patch", "tile", "pool5",
                                             "sharding"))
def _tile_probabilities(model: AlexNet, params: Any, window: jax.Array, scale: int, patch: int,
                        tile: int, pool5: int, sharding: Any) -> jax.Array:
    """[tile, tile, classes] probabilities of the pixels whose patches fit in ``window``
    ([tile + p - 1] squared, float)."""
    side = scale * window.shape[0]
    big = jax.image.resize(window[None, :, :, None], (1, side, side, 1), method="bilinear")
    big = preprocess(big, model.variant)
    step = STRIDE // scale  # pixels between the windows of one pass
    length = STRIDE * (tile // step - 1) + scale * patch
    shifts = [(dy, dx) for dy in range(step) for dx in range(step)]
    crops = jnp.stack([jax.lax.dynamic_slice(big[0], (scale * dy, scale * dx, 0),
                                             (length, length, 3)) for dy, dx in shifts])
    if sharding is not None:
        crops = jax.lax.with_sharding_constraint(crops, sharding)
    logits = dense_logits(model, params, crops, pool5)  # [step**2, tile/step, tile/step, C]
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    k = tile // step
    return probs.reshape(step, step, k, k, -1).transpose(2, 0, 3, 1, 4).reshape(tile, tile, -1)


def _by_convolution(scorer: Any, image: np.ndarray, patch: int, tile: int) -> np.ndarray:
    scale = conv_scale(scorer.size, patch)
    step = STRIDE // scale
    if tile % step:
        raise ValueError(f"tile {tile} must be a multiple of {step}")
    h, w = image.shape
    rows, cols = -(-h // tile), -(-w // tile)
    grown = np.pad(image, ((0, rows * tile - h), (0, cols * tile - w)), mode="edge")
    source = padded(grown, patch).astype(np.float32)
    pool5 = pool5_side(scorer.model, scorer.size)
    devices = scorer.mesh.devices.size
    sharding = NamedSharding(scorer.mesh, P("data")) if (step * step) % devices == 0 else None
    out = np.zeros((rows * tile, cols * tile, scorer.num_classes), np.float32)
    span = tile + patch - 1
    for i in range(rows):
        for j in range(cols):
            window = source[i * tile:i * tile + span, j * tile:j * tile + span]
            out[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = np.asarray(
                _tile_probabilities(scorer.model, scorer.replicated_params, window, scale,
                                    patch, tile, pool5, sharding))
    return out[:h, :w]
