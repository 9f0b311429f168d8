"""Candidate scoring: resize + preprocessing against PIL/numpy, vmapped scores against loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ftjax import layerwise
from ftjax.apps import ArrayCandidates
from ftjax.models.alexnet import AlexNet
from ftjax.scoring import Scorer, prepare, score_candidates

CAFFE_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434])


def reference_prepare(patch: np.ndarray, size: int) -> np.ndarray:
    """One HWC uint8 patch -> Caffe input: PIL bilinear resize per channel in float, grey copied
    into three channels, RGB -> BGR, minus the BVLC means."""
    chans = [np.asarray(Image.fromarray(patch[..., c].astype(np.float32), mode="F")
                        .resize((size, size), Image.BILINEAR)) for c in range(patch.shape[-1])]
    x = np.stack(chans, -1)
    x = np.broadcast_to(x, (size, size, 3))
    return x[..., ::-1] - CAFFE_MEAN_BGR


@pytest.mark.parametrize("shape, size", [((13, 17, 3), 31), ((45, 40, 3), 19), ((11, 9, 1), 23)])
def test_prepare_matches_pil_and_caffe_preprocessing(shape, size):
    patches = np.random.default_rng(0).integers(0, 256, (2, *shape), dtype=np.uint8)
    got = np.asarray(prepare(patches, "caffe", size))
    assert got.shape == (2, size, size, 3) and got.dtype == np.float32
    for patch, out in zip(patches, got, strict=True):
        np.testing.assert_allclose(out, reference_prepare(patch, size), atol=2e-3)


def test_prepare_default_size_and_errors():
    patches = np.zeros((1, 8, 8, 3), np.uint8)
    assert prepare(patches, "caffe").shape == (1, 227, 227, 3)
    assert prepare(patches, "torchvision").shape == (1, 224, 224, 3)
    with pytest.raises(ValueError, match="uint8"):
        prepare(patches.astype(np.float32), "caffe")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        prepare(np.zeros((1, 8, 8, 2), np.uint8), "caffe")


SIZE, CLASSES = 9, 4


def linear_apply(variables, images):
    """A tiny stand-in network: one dense layer on the flattened image."""
    return images.reshape(images.shape[0], -1) @ variables["w"] + variables["b"]


@pytest.fixture(scope="module")
def linear_net():
    rng = np.random.default_rng(1)
    variables = {"w": rng.standard_normal((SIZE * SIZE * 3, CLASSES)).astype(np.float32) * 3e-3,
                 "b": rng.standard_normal(CLASSES).astype(np.float32)}
    patches = rng.integers(0, 256, (5, 3, 6, 7, 3), dtype=np.uint8)
    return variables, patches


def loop_scores(apply_fn, variables, patches, size):
    """Plain loops: each patch alone through prepare and the network, softmax, mean."""
    out = []
    for candidate in patches:
        probs = []
        for patch in candidate:
            logits = np.asarray(apply_fn(variables, prepare(patch[None], "caffe", size)))[0]
            e = np.exp(logits - logits.max())
            probs.append(e / e.sum())
        out.append(np.mean(probs, axis=0))
    return np.array(out)


def test_scores_equal_a_plain_loop(linear_net):
    variables, patches = linear_net
    got = score_candidates(linear_apply, variables, patches, size=SIZE, chunk_size=2)
    want = loop_scores(linear_apply, variables, patches, SIZE)
    assert got.shape == (5, CLASSES)
    assert want.std(axis=0).min() > 0.01  # candidates really differ
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_chunking_and_padding_do_not_change_scores_and_compile_once(linear_net):
    variables, patches = linear_net
    traces = []

    def counting_apply(v, x):
        traces.append(x.shape)
        return linear_apply(v, x)

    # 5 candidates in chunks of 2: two full chunks and one padded, one compiled shape.
    base = score_candidates(counting_apply, variables, patches, size=SIZE, chunk_size=2)
    assert len(traces) == 1
    for chunk_size in (1, 3, 5, 8, None):
        np.testing.assert_allclose(
            score_candidates(linear_apply, variables, patches, size=SIZE, chunk_size=chunk_size),
            base, rtol=1e-6, atol=1e-8)


def test_grey_patches_score_as_their_three_channel_copies(linear_net):
    variables, _ = linear_net
    grey = np.random.default_rng(2).integers(0, 256, (3, 2, 10, 8, 1), dtype=np.uint8)
    got = score_candidates(linear_apply, variables, grey, size=SIZE)
    want = score_candidates(linear_apply, variables, np.repeat(grey, 3, axis=-1), size=SIZE)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got, loop_scores(linear_apply, variables, grey, SIZE), rtol=1e-5)


def test_empty_and_bad_input(linear_net):
    variables, patches = linear_net
    empty = score_candidates(linear_apply, variables, patches[:0], size=SIZE)
    assert empty.shape == (0, CLASSES)
    with pytest.raises(ValueError, match="at least one patch"):
        score_candidates(linear_apply, variables, patches[:, :0], size=SIZE)
    with pytest.raises(ValueError, match="uint8"):
        score_candidates(linear_apply, variables, patches.astype(np.float32), size=SIZE)
    with pytest.raises(ValueError, match=r"\[C, K, H, W, ch\]"):
        score_candidates(linear_apply, variables, patches[0], size=SIZE)
    with pytest.raises(ValueError, match="chunk_size"):
        score_candidates(linear_apply, variables, patches, size=SIZE, chunk_size=0)


def test_alexnet_scores_equal_a_plain_loop():
    """The real network at its 227 input: 2 candidates x 2 patches of 30x30."""
    model = AlexNet(num_classes=2)
    params = layerwise.init_params(None, "scratch", 2, "caffe", jax.random.key(0))
    params["fc8"] = {**params["fc8"], "kernel": params["fc8"]["kernel"] * 300.0}  # spread probs
    variables = {"params": params}
    patches = np.random.default_rng(3).integers(0, 256, (2, 2, 30, 30, 3), dtype=np.uint8)
    got = score_candidates(model.apply, variables, patches)
    np.testing.assert_array_equal(score_candidates(model, params, patches), got)  # short form
    apply_one = jax.jit(model.apply)
    want = loop_scores(apply_one, variables, patches, 227)
    assert np.abs(want[:, 1] - 0.5).max() > 0.05
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    assert jnp.isfinite(got).all()


def test_scoring_sharded_over_8_devices_equals_one_device():
    """The scorer splits each chunk over every local device (8 simulated CPU devices here)."""
    assert jax.local_device_count() == 8  # tests/conftest.py
    model = AlexNet(num_classes=3)
    params = layerwise.init_params(None, "scratch", 3, "caffe", jax.random.key(1), size=67)
    params["fc8"] = {**params["fc8"], "kernel": params["fc8"]["kernel"] * 300.0}
    patches = np.random.default_rng(4).integers(0, 256, (11, 2, 12, 12, 3), dtype=np.uint8)
    one = Scorer(model, params, size=67, chunk=5, devices=jax.local_devices()[:1])
    eight = Scorer(model, params, size=67, chunk=5)
    assert eight.mesh.devices.size == 8 and one.mesh.devices.size == 1
    source = ArrayCandidates(patches, np.zeros(11, np.int32))
    got, want = eight.score(source), one.score(source)
    assert got.shape == (11, 3) and np.abs(want - 1 / 3).max() > 0.01
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # The pieces for dense inference give the same numbers.
    dense = jax.nn.softmax(eight.logits(eight.prepare(patches.reshape(22, 12, 12, 3))), -1)
    np.testing.assert_allclose(np.asarray(dense).reshape(11, 2, 3).mean(1), want, rtol=1e-5,
                               atol=1e-7)
