"""AlexNet as a pure Flax module: Caffe's BVLC AlexNet (the paper's network) and torchvision's.

The network is a chain of named blocks, one per layer of the paper (conv1..conv5, fc6..fc8). A block
is the layer, the dropout on its input if any, and what follows it up to the next layer (ReLU, LRN,
pooling), so
``apply(..., stop="conv2")`` returns exactly what conv3 consumes and ``apply(..., start="conv3")``
continues from it: that is what frozen-trunk caching and layer-wise fine-tuning need.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax import lax

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
VARIANTS = ("caffe", "torchvision")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False
    pool: bool = False


# Per variant: conv layers, whether pooling rounds up (Caffe) or down (PyTorch), where dropout sits
# relative to fc6/fc7 (Caffe: after the ReLU; torchvision: before the Linear), adaptive pooling.
_CONVS = {
    "caffe": {
        "conv1": ConvSpec(96, 11, stride=4, lrn=True, pool=True),
        "conv2": ConvSpec(256, 5, padding=2, groups=2, lrn=True, pool=True),
        "conv3": ConvSpec(384, 3, padding=1),
        "conv4": ConvSpec(384, 3, padding=1, groups=2),
        "conv5": ConvSpec(256, 3, padding=1, groups=2, pool=True),
    },
    "torchvision": {
        "conv1": ConvSpec(64, 11, stride=4, padding=2, pool=True),
        "conv2": ConvSpec(192, 5, padding=2, pool=True),
        "conv3": ConvSpec(384, 3, padding=1),
        "conv4": ConvSpec(256, 3, padding=1),
        "conv5": ConvSpec(256, 3, padding=1, pool=True),
    },
}
_FC_FEATURES = 4096
POOL5 = 6  # the pool5 side fc6 takes at the variants' own input sizes (torchvision: always)
STRIDE = 32  # conv1's stride 4 times three poolings' 2: input pixels per pool5 cell
# The blocks whose input goes through dropout (0.5) in training. Caffe: after fc6's and fc7's ReLU,
# i.e. before fc7 and fc8; torchvision: before the fc6 and fc7 Linear layers.
DROPOUT_BEFORE = {"caffe": ("fc7", "fc8"), "torchvision": ("fc6", "fc7")}

# Scratch initialisation, BVLC AlexNet's train_val.prototxt: Gaussian weights, constant biases.
INIT_STD = {"conv1": 0.01, "conv2": 0.01, "conv3": 0.01, "conv4": 0.01, "conv5": 0.01,
            "fc6": 0.005, "fc7": 0.005, "fc8": 0.01}
INIT_BIAS = {"conv1": 0.0, "conv2": 0.1, "conv3": 0.0, "conv4": 0.1, "conv5": 0.1,
             "fc6": 0.1, "fc7": 0.1, "fc8": 0.0}


def input_size(variant: str) -> int:
    """The side of the square input the variant was trained on (227 Caffe, 224 torchvision)."""
    _check_variant(variant)
    return 227 if variant == "caffe" else 224


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown AlexNet variant {variant!r}; expected one of {VARIANTS}")


def grouped_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int,
                 groups: int) -> jax.Array:
    """NHWC convolution with a (kh, kw, in/groups, out) kernel, Caffe's grouped layout.

    Groups run as separate plain convolutions on channel slices: XLA:CPU's backward pass of
    ``feature_group_count`` is several times slower than that (STACK.md), and on GPU the split costs
    nothing measurable.
    """
    if groups == 1:
        return _conv(x, kernel, stride, padding)
    xs = jnp.split(x, groups, axis=-1)
    ks = jnp.split(kernel, groups, axis=-1)
    return jnp.concatenate([_conv(a, k, stride, padding) for a, k in zip(xs, ks, strict=True)],
                           axis=-1)


def _conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    pad = ((padding, padding), (padding, padding))
    return lax.conv_general_dilated(x, kernel, (stride, stride), pad,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _window_sum(v: jax.Array, size: int) -> jax.Array:
    """Sum over ``size`` neighbouring channels, zero-padded at the ends (across-channel LRN)."""
    half = size // 2
    padded = jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(half, half)])
    c = v.shape[-1]
    return sum(padded[..., i:i + c] for i in range(size))


@jax.custom_vjp
def lrn(x: jax.Array) -> jax.Array:
    """Caffe LRN (ACROSS_CHANNELS, local_size 5, alpha 1e-4, beta 0.75, k 1) on NHWC input."""
    return _lrn_fwd(x)[0]


_LRN_SIZE, _LRN_ALPHA, _LRN_BETA = 5, 1e-4, 0.75  # _pow_minus_beta assumes 0.75


def _lrn_fwd(x):
    scale = 1.0 + (_LRN_ALPHA / _LRN_SIZE) * _window_sum(x * x, _LRN_SIZE)
    y = x * _pow_minus_beta(scale)
    return y, (x, y, scale)


def _pow_minus_beta(s: jax.Array) -> jax.Array:
    """``s ** -beta`` for Caffe's beta = 0.75 as rsqrt(s) * rsqrt(sqrt(s)): cheap square roots
    instead of exp(log), which made the LRN forward pass 1.6x slower on CPU."""
    return lax.rsqrt(s) * lax.rsqrt(lax.sqrt(s))


def _lrn_bwd(res, g):
    # Caffe's LRN backward: one window sum instead of autodiff's chain through the power.
    x, y, scale = res
    coeff = 2.0 * _LRN_ALPHA * _LRN_BETA / _LRN_SIZE
    return (g * _pow_minus_beta(scale) - coeff * x * _window_sum(g * y / scale, _LRN_SIZE),)


lrn.defvjp(_lrn_fwd, _lrn_bwd)


def _pool_geometry(x: jax.Array, ceil_mode: bool) -> tuple[list[int], list[int]]:
    """Output sizes and bottom/right padding (negative: cropping) of 3x3 stride-2 pooling."""
    outs, pads = [], []
    for n in x.shape[1:3]:
        out = (math.ceil if ceil_mode else math.floor)((n - 3) / 2) + 1
        outs.append(out)
        pads.append((out - 1) * 2 + 3 - n)
    return outs, pads


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, ceil_mode: bool) -> jax.Array:
    """3x3 stride-2 max pooling; ``ceil_mode`` rounds the output size up as Caffe does.

    The backward pass routes each gradient to the first maximum of its window (as XLA's
    select-and-scatter and PyTorch do) and assembles the input gradient by row and column parity
    in one pass: about 4x faster on XLA:CPU than select-and-scatter, and half the time of nine
    full-size strided placements inside a training step.
    """
    return _max_pool_fwd(x, ceil_mode)[0]


def _max_pool_fwd(x, ceil_mode):
    _, (ph, pw) = _pool_geometry(x, ceil_mode)
    out = lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                            [(0, 0), (0, ph), (0, pw), (0, 0)])
    return out, (x, out)


def _max_pool_bwd(ceil_mode, res, g):
    x, out = res
    (oh, ow), (ph, pw) = _pool_geometry(x, ceil_mode)
    n, _, _, c = x.shape
    zero = jnp.zeros((), g.dtype)
    # The input under the windows: 2*oh+1 x 2*ow+1 (ceil mode pads, floor mode crops).
    xp = lax.pad(x, jnp.array(-jnp.inf, x.dtype), [(0, 0, 0), (0, ph, 0), (0, pw, 0), (0, 0, 0)])
    first = jnp.full(out.shape, 9, jnp.int32)  # window offset 3i + j of each first maximum
    for k in reversed(range(9)):
        i, j = divmod(k, 3)
        first = jnp.where(xp[:, i:i + 2 * oh - 1:2, j:j + 2 * ow - 1:2] == out, k, first)

    def sent(i, j, down, right):
        """What offset (i, j) sends, on the (oh+1, ow+1) grid of input rows 2p+a, columns 2q+b,
        moved one window down/right (offset 2 of window p-1 is offset 0's row of window p)."""
        v = jnp.where(first == 3 * i + j, g, zero)
        return lax.pad(v, zero, [(0, 0, 0), (down, 1 - down, 0), (right, 1 - right, 0),
                                 (0, 0, 0)])

    # Even input rows take offsets 0 (window p) and 2 (window p-1); odd rows offset 1.
    even_even = sent(0, 0, 0, 0) + sent(2, 0, 1, 0) + sent(0, 2, 0, 1) + sent(2, 2, 1, 1)
    even_odd = sent(0, 1, 0, 0) + sent(2, 1, 1, 0)
    odd_even = sent(1, 0, 0, 0) + sent(1, 2, 0, 1)
    odd_odd = sent(1, 1, 0, 0)
    dx = jnp.stack([jnp.stack([even_even, even_odd], 3), jnp.stack([odd_even, odd_odd], 3)], 2)
    dx = dx.reshape(n, 2 * oh + 2, 2 * ow + 2, c)  # rows (p, a) -> 2p + a
    return (lax.pad(dx, zero, [(0, 0, 0), (0, -ph - 1, 0), (0, -pw - 1, 0), (0, 0, 0)]),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def adaptive_pool_matrix(n: int, size: int) -> np.ndarray:
    """PyTorch's AdaptiveAvgPool along one axis as a [size, n] matrix: bin i averages
    [floor(i*n/size), ceil((i+1)*n/size)). A linear map, so it folds into fc6 (``ftjax.dense``)."""
    m = np.zeros((size, n), np.float32)
    for i in range(size):
        lo, hi = (i * n) // size, -((-(i + 1) * n) // size)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """PyTorch's AdaptiveAvgPool2d on NHWC."""
    h, w = x.shape[1:3]
    if (h, w) == (size, size):
        return x
    return jnp.einsum("ih,jw,nhwc->nijc", jnp.asarray(adaptive_pool_matrix(h, size), x.dtype),
                      jnp.asarray(adaptive_pool_matrix(w, size), x.dtype), x)


class Conv(nn.Module):
    """A convolution layer holding Caffe's parameter layout, grouped or not."""

    spec: ConvSpec
    name_in_net: str
    dtype: Any = jnp.float32  # compute dtype; the parameters stay float32

    @nn.compact
    def __call__(self, x):
        s = self.spec
        std, bias = INIT_STD[self.name_in_net], INIT_BIAS[self.name_in_net]
        kernel = self.param("kernel", nn.initializers.normal(std),
                            (s.kernel, s.kernel, x.shape[-1] // s.groups, s.features))
        b = self.param("bias", nn.initializers.constant(bias), (s.features,))
        return (grouped_conv(x.astype(self.dtype), kernel.astype(self.dtype), s.stride,
                             s.padding, s.groups) + b.astype(self.dtype))


def _dense(features: int, layer: str, dtype: Any) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.normal(INIT_STD[layer]),
                    bias_init=nn.initializers.constant(INIT_BIAS[layer]), dtype=dtype)


class AlexNet(nn.Module):
    """AlexNet with the paper's layer names; input is NHWC float32 already preprocessed.

    ``start``/``stop`` run a contiguous range of blocks: ``stop`` returns that block's output
    (after its ReLU/LRN/pooling), ``start`` expects the previous block's output. Dropout belongs to
    the block it feeds (``DROPOUT_BEFORE``), so ``stop`` output is the same in training and
    inference, and a frozen trunk cached with ``stop`` loses no dropout of its own.
    """

    num_classes: int = 1000
    variant: str = "caffe"
    dropout_rate: float = 0.5
    # Compute dtype of activations and products (float32: the paper's; bfloat16 for
    # accelerators). Parameters stay float32; LRN runs in float32; logits come out float32.
    dtype: Any = jnp.float32

    def setup(self):
        _check_variant(self.variant)
        convs = _CONVS[self.variant]
        self.conv1 = Conv(convs["conv1"], "conv1", self.dtype)
        self.conv2 = Conv(convs["conv2"], "conv2", self.dtype)
        self.conv3 = Conv(convs["conv3"], "conv3", self.dtype)
        self.conv4 = Conv(convs["conv4"], "conv4", self.dtype)
        self.conv5 = Conv(convs["conv5"], "conv5", self.dtype)
        self.fc6 = _dense(_FC_FEATURES, "fc6", self.dtype)
        self.fc7 = _dense(_FC_FEATURES, "fc7", self.dtype)
        self.fc8 = _dense(self.num_classes, "fc8", self.dtype)
        # One dropout module per block that starts with dropout: its masks depend on the block
        # alone, not on which blocks ran before, so a step started from cached trunk features
        # draws the same masks as the whole network (no parameters: the params tree is unchanged).
        self.dropouts = {layer: nn.Dropout(self.dropout_rate)
                         for layer in DROPOUT_BEFORE[self.variant]}

    def block(self, layer: str, x: jax.Array, train: bool, adaptive: bool = True) -> jax.Array:
        """One layer of the paper with the operations that follow it (``adaptive=False``: conv5
        without torchvision's adaptive pooling, see :meth:`feature_map`)."""
        caffe = self.variant == "caffe"
        module = getattr(self, layer)
        if layer.startswith("conv"):
            spec = _CONVS[self.variant][layer]
            x = nn.relu(module(x))
            if spec.lrn:
                x = lrn(x.astype(jnp.float32)).astype(x.dtype)
            if spec.pool:
                x = max_pool(x, ceil_mode=caffe)
            if layer == "conv5" and not caffe and adaptive:
                x = adaptive_avg_pool(x, POOL5)
            return x
        if layer == "fc6":
            x = x.reshape(x.shape[0], -1)
        if layer in self.dropouts:
            x = self.dropouts[layer](x, deterministic=not train)
        x = module(x)
        return x.astype(jnp.float32) if layer == "fc8" else nn.relu(x)

    def __call__(self, x: jax.Array, train: bool = False, start: str = "conv1",
                 stop: str = "fc8") -> jax.Array:
        for layer in layer_range(start, stop):
            with jax.named_scope(layer):  # profiles name each operation's layer
                x = self.block(layer, x, train)
        return x

    def feature_map(self, x: jax.Array) -> jax.Array:
        """conv1..conv5 (inference) on input of any size, without adaptive pooling: pool5 cell k
        sees the input window that starts at ``STRIDE * k``, so one pass over a large image
        holds the pool5 maps of all its windows at that stride (``ftjax.dense``)."""
        for layer in LAYERS[:5]:
            x = self.block(layer, x, False, adaptive=False)
        return x


def layer_range(start: str, stop: str) -> Sequence[str]:
    """The layers from ``start`` to ``stop`` inclusive, in network order."""
    for name in (start, stop):
        if name not in LAYERS:
            raise ValueError(f"unknown layer {name!r}; expected one of {LAYERS}")
    i, j = LAYERS.index(start), LAYERS.index(stop)
    if i > j:
        raise ValueError(f"start layer {start!r} comes after stop layer {stop!r}")
    return LAYERS[i:j + 1]
