"""Weights: preprocessing, save/load, the cache and download path, the converter CLI, bad input."""

import hashlib
import os
import pickle
import subprocess
import sys
import zipfile

import caffe_wire
import numpy as np
import pytest
import torch

from experiments.torch_reference import build
from ftjax import weights
from ftjax.models.preprocess import preprocess


@pytest.fixture(scope="module")
def tv_file(tmp_path_factory):
    torch.manual_seed(0)
    net, _ = build("torchvision")
    path = tmp_path_factory.mktemp("tv") / "alexnet-test.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTJAX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _source_for(path, url=None, digest=None):
    digest = digest or hashlib.sha256(path.read_bytes()).hexdigest()
    return weights.Source(url or path.as_uri(), "alexnet-test.pth", "sha256", digest)


# ----------------------------------------------------------------------------- preprocessing
def test_preprocess_caffe_is_bgr_minus_means():
    img = np.array([[[[10, 20, 30]]]], np.uint8)  # one RGB pixel
    out = np.asarray(preprocess(img, "caffe"))
    np.testing.assert_allclose(out[0, 0, 0], [30 - 104.00698793, 20 - 116.66876762,
                                              10 - 122.67891434], rtol=1e-6)


def test_preprocess_torchvision_and_grey():
    img = np.full((2, 3, 4, 1), 51, np.uint8)
    out = np.asarray(preprocess(img, "torchvision"))
    assert out.shape == (2, 3, 4, 3) and out.dtype == np.float32
    expect = (0.2 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[1, 2, 3], expect, rtol=1e-6)
    np.testing.assert_array_equal(preprocess(img[..., 0], "caffe"),
                                  preprocess(img, "caffe"))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        preprocess(np.zeros((1, 4, 4, 2), np.uint8), "caffe")


# ----------------------------------------------------------------------------- save / load
def test_save_load_roundtrip_and_checksum(tmp_path, tv_file):
    params = weights.convert_torchvision(tv_file)
    path = weights.save(params, tmp_path / "p.npz")
    back = weights.load(path)
    assert weights.checksum(back) == weights.checksum(params)
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary left behind
    back["fc8"]["bias"] = back["fc8"]["bias"] + 1
    assert weights.checksum(back) != weights.checksum(params)


def test_load_rejects_garbage(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(weights.WeightsError, match="bad.npz"):
        weights.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", **{"conv1/kernel": np.zeros(2)})
    with pytest.raises(weights.WeightsError, match="missing layers"):
        weights.load(tmp_path / "partial.npz")


# ----------------------------------------------------------------------------- bad weight files
def test_missing_file():
    with pytest.raises(weights.WeightsError, match="no such file"):
        weights.convert_caffemodel("/nonexistent/bvlc_alexnet.caffemodel")


def test_truncated_caffemodel(tmp_path):
    rng = np.random.default_rng(0)
    layers = {"conv1": (rng.normal(size=(96, 3, 11, 11)), np.zeros(96))}
    data = caffe_wire.caffemodel(layers, legacy=True)
    (tmp_path / "t.caffemodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(weights.WeightsError, match="t.caffemodel.*truncated"):
        weights.convert_caffemodel(tmp_path / "t.caffemodel")


def test_caffemodel_without_a_layer(tmp_path):
    rng = np.random.default_rng(0)
    shapes = weights.expected_shapes("caffe")
    layers = {n: (rng.normal(size=w), np.zeros(b)) for n, (w, b) in shapes.items() if n != "fc7"}
    (tmp_path / "m.caffemodel").write_bytes(caffe_wire.caffemodel(layers, legacy=False))
    with pytest.raises(weights.WeightsError, match="no layer 'fc7'"):
        weights.convert_caffemodel(tmp_path / "m.caffemodel")


def test_caffemodel_of_the_other_variant(tmp_path):
    layers = {"conv1": (np.zeros((64, 3, 11, 11)), np.zeros(64))}  # torchvision's conv1
    (tmp_path / "tv.caffemodel").write_bytes(caffe_wire.caffemodel(layers, legacy=True))
    with pytest.raises(weights.WeightsError, match="looks like the 'torchvision' variant"):
        weights.convert_caffemodel(tmp_path / "tv.caffemodel")


def test_caffemodel_without_groups(tmp_path):
    rng = np.random.default_rng(0)
    layers = {"conv1": (rng.normal(size=(96, 3, 11, 11)), np.zeros(96)),
              "conv2": (rng.normal(size=(256, 96, 5, 5)), np.zeros(256))}
    (tmp_path / "g.caffemodel").write_bytes(caffe_wire.caffemodel(layers, legacy=True))
    with pytest.raises(weights.WeightsError, match="conv2 .* imply 1 group"):
        weights.convert_caffemodel(tmp_path / "g.caffemodel")


def test_cross_format_files(tmp_path, tv_file):
    with pytest.raises(weights.WeightsError, match="alexnet-test.pth"):
        weights.convert_caffemodel(tv_file)
    layers = {"conv1": (np.zeros((96, 3, 11, 11)), np.zeros(96))}
    (tmp_path / "c.caffemodel").write_bytes(caffe_wire.caffemodel(layers, legacy=True))
    with pytest.raises(weights.WeightsError, match="not a readable PyTorch"):
        weights.convert_torchvision(tmp_path / "c.caffemodel")


def test_caffe_state_dict_is_not_torchvision(tmp_path):
    net, _ = build("caffe")
    torch.save(net.state_dict(), tmp_path / "caffe.pth")
    with pytest.raises(weights.WeightsError, match="looks like the 'caffe' variant"):
        weights.convert_torchvision(tmp_path / "caffe.pth")


def test_torch_reader_refuses_arbitrary_objects(tmp_path):
    import collections
    torch.save({"w": torch.zeros(2), "evil": collections.Counter("ab")}, tmp_path / "x.pth")
    with pytest.raises(weights.WeightsError, match="refusing to load collections.Counter"):
        weights.read_torch_state_dict(tmp_path / "x.pth")
    with zipfile.ZipFile(tmp_path / "y.pth", "w") as z:  # a zip with a code-running pickle
        z.writestr("y/data.pkl", pickle.dumps(os.getcwd))
    with pytest.raises(weights.WeightsError, match="refusing"):
        weights.read_torch_state_dict(tmp_path / "y.pth")


def test_truncated_legacy_torch_file(tmp_path, tv_file):
    net, _ = build("torchvision")
    torch.save(net.state_dict(), tmp_path / "l.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "l.pth").read_bytes()
    (tmp_path / "l.pth").write_bytes(data[: len(data) - 1000])
    with pytest.raises(weights.WeightsError, match="truncated"):
        weights.convert_torchvision(tmp_path / "l.pth")


# ----------------------------------------------------------------------------- cache & download
def test_pretrained_downloads_verifies_converts_and_caches(cache, tv_file, monkeypatch):
    monkeypatch.setitem(weights.SOURCES, "torchvision", _source_for(tv_file))
    params = weights.pretrained("torchvision", progress=False)
    assert weights.checksum(params) == weights.checksum(weights.convert_torchvision(tv_file))
    assert sorted(p.name for p in cache.iterdir()) == ["alexnet-test.pth",
                                                       "alexnet_torchvision_imagenet.npz"]
    calls = []
    monkeypatch.setitem(weights.CONVERTERS, "torchvision", lambda p: calls.append(p))
    again = weights.pretrained("torchvision", progress=False)  # from the converted cache entry
    assert not calls and weights.checksum(again) == weights.checksum(params)


def test_hash_mismatch_never_enters_the_cache(cache, tv_file, monkeypatch):
    monkeypatch.setitem(weights.SOURCES, "torchvision", _source_for(tv_file, digest="0123abcd"))
    with pytest.raises(weights.WeightsError, match="does not match the official"):
        weights.pretrained("torchvision", progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_message_names_url_hash_and_destination(cache, tv_file, monkeypatch):
    src = _source_for(tv_file, url="http://127.0.0.1:9/alexnet-test.pth")  # nothing listens
    monkeypatch.setitem(weights.SOURCES, "torchvision", src)
    with pytest.raises(weights.WeightsError) as e:
        weights.pretrained("torchvision", progress=False)
    msg = str(e.value)
    assert src.url in msg and src.hash_value in msg and str(cache / src.filename) in msg
    assert not any(cache.iterdir())  # no partial download left behind


def test_corrupt_cached_download_is_reported(cache, tv_file, monkeypatch):
    monkeypatch.setitem(weights.SOURCES, "torchvision", _source_for(tv_file))
    cache.mkdir()
    (cache / "alexnet-test.pth").write_bytes(b"partial")
    with pytest.raises(weights.WeightsError, match="delete it and download again"):
        weights.pretrained("torchvision", progress=False)


# ----------------------------------------------------------------------------- the converter CLI
def _convert(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ftjax.convert", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_convert_cli_reports_counts_and_checksum(tmp_path, tv_file):
    out = tmp_path / "tv.npz"
    r = _convert("--arch=torchvision", f"--src={tv_file}", f"--dst={out}")
    assert r.returncode == 0, r.stderr
    assert "61,100,840" in r.stdout and "fc6" in r.stdout
    assert f"sha256 {weights.checksum(weights.load(out))}" in r.stdout


def test_convert_cli_errors_cleanly(tmp_path, tv_file):
    r = _convert("--arch=caffe", f"--src={tv_file}", f"--dst={tmp_path / 'x.npz'}")
    assert r.returncode == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "x.npz").exists()
    # Without --dst the output would enter the cache: only the official file may.
    r = _convert("--arch=torchvision", f"--src={tv_file}", env={"FTJAX_CACHE": str(tmp_path)})
    assert r.returncode == 1 and "does not match the official" in r.stderr
