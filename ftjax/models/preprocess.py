"""The input each AlexNet variant's ImageNet weights expect (no file reading: imports with jax
alone, so the network, the train step and the scorer run where the data libraries are absent)."""

from __future__ import annotations

import jax.numpy as jnp

from ftjax.models.alexnet import _check_variant

# Caffe's BVLC mean image (ilsvrc_2012_mean.npy) averaged per channel, in BGR order.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)



def preprocess(images: jnp.ndarray, variant: str) -> jnp.ndarray:
    """uint8 RGB (or grey) NHWC images -> the float32 input the variant's ImageNet weights expect.

    Grey input (NHW or NHW1) is copied into three channels, as the paper does. Caffe: BGR order,
    0-255, minus the BVLC channel means. torchvision: RGB in [0, 1], ImageNet mean/std. Works
    under ``jit`` so it runs on the device next to the network.
    """
    _check_variant(variant)
    x = jnp.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected NHWC images with 1 or 3 channels, got shape {x.shape}")
    x = jnp.broadcast_to(x, (*x.shape[:3], 3)).astype(jnp.float32)
    if variant == "caffe":
        return x[..., ::-1] - jnp.asarray(CAFFE_MEAN_BGR, jnp.float32)
    return (x / 255.0 - jnp.asarray(TORCHVISION_MEAN, jnp.float32)) / jnp.asarray(
        TORCHVISION_STD, jnp.float32)
