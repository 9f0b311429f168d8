"""AlexNet parity with the PyTorch reference, through the real weight-file formats."""

import caffe_wire
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from experiments.torch_reference import build, layer_module
from ftjax import weights
from ftjax.models import LAYERS, AlexNet, alexnet, input_size
from ftjax.models.alexnet import layer_range, lrn


def _torch_layers(net, where):
    return {n: (layer_module(net, w).weight.detach().numpy(),
                layer_module(net, w).bias.detach().numpy()) for n, w in where.items()}


@pytest.fixture(scope="module")
def caffe_net():
    torch.manual_seed(0)
    net, where = build("caffe")
    return net.eval(), _torch_layers(net, where)


@pytest.fixture(scope="module")
def torchvision_net():
    torch.manual_seed(1)
    net, _ = build("torchvision")
    return net.eval()


def _relative_error(params, variant, net, size):
    x = np.random.default_rng(size).normal(0, 50, size=(2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = np.asarray(AlexNet(variant=variant).apply({"params": params},
                                                    jnp.asarray(x.transpose(0, 2, 3, 1))))
    return np.abs(out - ref).max() / np.abs(ref).max()


# 199 is a size where every Caffe pooling layer rounds up (ceil != floor) and pool5 is still 6x6.
@pytest.mark.parametrize("legacy", [True, False], ids=["layers-V1", "layer"])
def test_caffe_parity_via_caffemodel(tmp_path, caffe_net, legacy):
    net, layers = caffe_net
    path = tmp_path / "alexnet.caffemodel"
    path.write_bytes(caffe_wire.caffemodel(layers, legacy=legacy))
    params = weights.convert_caffemodel(path)
    assert sum(v.size for v in jax.tree.leaves(params)) == 60_965_224
    for size in (227, 199):
        assert _relative_error(params, "caffe", net, size) < 1e-5


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torchvision_parity_via_state_dict(tmp_path, torchvision_net, zip_format):
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision_net.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    params = weights.convert_torchvision(path)
    assert sum(v.size for v in jax.tree.leaves(params)) == 61_100_840
    for size in (224, 256):  # 256: the adaptive pooling averages overlapping 7x7 -> 6x6 bins
        assert _relative_error(params, "torchvision", torchvision_net, size) < 1e-5


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_free_reader_matches_torch_load(tmp_path, zip_format):
    sd = {"w": torch.randn(4, 3, 2, 2), "b": torch.arange(5, dtype=torch.float64),
          "t": torch.randn(6, 5).t(),  # a non-contiguous view: strides must be honoured
          "i": torch.tensor([3, -1], dtype=torch.int64), "s": torch.tensor(2.5)}
    path = tmp_path / "sd.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    ours = weights.read_torch_state_dict(path)
    ref = torch.load(path)
    assert set(ours) == set(ref)
    for k, v in ref.items():
        np.testing.assert_array_equal(ours[k], v.numpy())
        assert ours[k].dtype == v.numpy().dtype and ours[k].shape == tuple(v.shape)


def test_lrn_gradient_matches_torch():
    """The custom LRN backward (Caffe's formula) agrees with PyTorch autograd."""
    x = np.random.default_rng(0).normal(0, 30, size=(2, 5, 5, 12)).astype(np.float32)
    g = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2)).requires_grad_()
    torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)(xt).backward(
        torch.from_numpy(g.transpose(0, 3, 1, 2)))
    ours = jax.grad(lambda v: jnp.sum(lrn(v) * g))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ours), xt.grad.numpy().transpose(0, 2, 3, 1),
                               rtol=1e-5, atol=1e-6)


def test_start_stop_compose_to_full_network():
    model = AlexNet(num_classes=3)
    x = jax.random.normal(jax.random.key(0), (2, 227, 227, 3))
    params = jax.jit(model.init)(jax.random.key(1), x)["params"]
    run = jax.jit(lambda p, x, start, stop: model.apply({"params": p}, x, start=start,
                                                        stop=stop), static_argnums=(2, 3))
    full = run(params, x, "conv1", "fc8")
    trunk = run(params, x, "conv1", "conv2")
    assert trunk.shape == (2, 13, 13, 256)  # what conv3 consumes
    np.testing.assert_allclose(run(params, trunk, "conv3", "fc8"), full, rtol=1e-5, atol=1e-5)
    assert run(params, x, "conv1", "fc7").shape == (2, 4096)


def test_dropout_only_in_training():
    model = AlexNet(num_classes=2)
    x = jax.random.normal(jax.random.key(0), (2, 227, 227, 3))
    params = model.init(jax.random.key(1), x)["params"]
    a = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    b = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model.apply({"params": params}, x),
                                  model.apply({"params": params}, x))


def test_layer_names_sizes_and_errors():
    assert LAYERS == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    assert input_size("caffe") == 227 and input_size("torchvision") == 224
    assert layer_range("conv4", "fc6") == ("conv4", "conv5", "fc6")
    with pytest.raises(ValueError, match="unknown layer"):
        layer_range("conv9", "fc8")
    with pytest.raises(ValueError, match="comes after"):
        layer_range("fc6", "conv2")
    with pytest.raises(ValueError, match="unknown AlexNet variant"):
        AlexNet(variant="vgg").init(jax.random.key(0), jnp.zeros((1, 227, 227, 3)))


@pytest.mark.parametrize("ceil_mode, size", [(True, 55), (True, 56), (False, 55), (False, 56)])
def test_max_pool_gradient_matches_torch(ceil_mode, size):
    """Gradients go to the first maximum of each window, ties included (ReLU zeros), as PyTorch."""
    x = np.maximum(np.random.default_rng(0).normal(size=(2, size, size, 4)), 0).astype(np.float32)
    x[0, :6, :6] = 0.0  # whole windows of tied zeros
    g = np.random.default_rng(1).normal(size=np.asarray(alexnet.max_pool(x, ceil_mode)).shape)
    g = g.astype(np.float32)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2)).requires_grad_()
    out = torch.nn.functional.max_pool2d(xt, 3, 2, ceil_mode=ceil_mode)
    out.backward(torch.from_numpy(g.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(np.asarray(alexnet.max_pool(x, ceil_mode)),
                                  out.detach().numpy().transpose(0, 2, 3, 1))
    ours = jax.vjp(lambda v: alexnet.max_pool(v, ceil_mode), jnp.asarray(x))[1](jnp.asarray(g))[0]
    np.testing.assert_allclose(ours, xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-6)
