"""ImageNet AlexNet weights: preprocessing, Caffe/torchvision conversion, the local cache.

Everything here returns plain numpy pytrees ``{'conv1': {'kernel', 'bias'}, ..., 'fc8': {...}}`` in
the Flax layout of ``ftjax.models.AlexNet`` (HWIO kernels, (in, out) dense kernels, fc6 rows in
NHWC flatten order). Readers never execute code from a file: the caffemodel is decoded with a
protobuf schema, the PyTorch file with an unpickler that only rebuilds tensors.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
import pickle
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from ftjax.cache import cache_dir
from ftjax.models.alexnet import _CONVS, LAYERS, VARIANTS, _check_variant

Params = dict[str, dict[str, np.ndarray]]

# Caffe's BVLC mean image (ilsvrc_2012_mean.npy) averaged per channel, in BGR order.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


class WeightsError(ValueError):
    """A weights file that is missing, corrupt, or not the AlexNet it claims to be."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a variant's official ImageNet weights live and how to recognise the genuine file."""

    url: str
    filename: str
    hash_name: str
    hash_value: str  # a prefix is accepted (torchvision publishes 8 hex digits of the sha256)


SOURCES = {
    "caffe": Source("http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
                    "bvlc_alexnet.caffemodel", "sha1", "9116a64c0fbe4459d18f4bb6b56d647b63920377"),
    "torchvision": Source("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                          "alexnet-owt-7be5be79.pth", "sha256", "7be5be79"),
}


# ----------------------------------------------------------------------------- preprocessing
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


# ----------------------------------------------------------------------------- expected shapes
def expected_shapes(variant: str, num_classes: int = 1000) -> dict[str, tuple[tuple, tuple]]:
    """PyTorch/Caffe-layout (OIHW or (out, in)) weight and bias shapes of every layer."""
    _check_variant(variant)
    shapes, cin = {}, 3
    for name, spec in _CONVS[variant].items():
        shapes[name] = ((spec.features, cin // spec.groups, spec.kernel, spec.kernel),
                        (spec.features,))
        cin = spec.features
    fc_in = (cin * 36, 4096, 4096)
    for name, n_in, n_out in zip(("fc6", "fc7", "fc8"), fc_in, (4096, 4096, num_classes),
                                 strict=True):
        shapes[name] = ((n_out, n_in), (n_out,))
    return shapes


def _to_flax(name: str, weight: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """One layer from OIHW / (out, in) layout to Flax's HWIO / (in, out)."""
    weight = np.asarray(weight, np.float32)
    if weight.ndim == 4:
        kernel = weight.transpose(2, 3, 1, 0)
    elif name == "fc6":  # rows were flattened from (C, 6, 6); Flax flattens NHWC as (6, 6, C)
        kernel = weight.reshape(weight.shape[0], -1, 6, 6).transpose(2, 3, 1, 0).reshape(
            -1, weight.shape[0])
    else:
        kernel = weight.T
    return {"kernel": np.ascontiguousarray(kernel), "bias": np.asarray(bias, np.float32).copy()}


def _assemble(blobs: Mapping[str, tuple[np.ndarray, np.ndarray]], variant: str,
              path: Path) -> Params:
    """Check every layer's blobs against the variant's shapes and convert them to Flax layout."""
    num_classes = blobs["fc8"][1].size if "fc8" in blobs else 1000
    params: Params = {}
    for name, (wshape, bshape) in expected_shapes(variant, num_classes).items():
        if name not in blobs:
            raise WeightsError(f"{path}: no layer {name!r} (found {sorted(blobs)}); "
                               f"not an AlexNet of the {variant!r} variant")
        w, b = blobs[name]
        if w.size != int(np.prod(wshape)) or b.size != int(np.prod(bshape)):
            raise WeightsError(
                f"{path}: layer {name!r} has weights of {w.size} values (shape {w.shape}) and "
                f"bias of {b.size}; the {variant!r} variant needs {wshape} and {bshape}"
                + _other_variant_hint(name, w.size, variant))
        params[name] = _to_flax(name, w.reshape(wshape), b.reshape(bshape))
    return params


def _other_variant_hint(name: str, size: int, variant: str) -> str:
    for other in VARIANTS:
        if other != variant and name in expected_shapes(other):
            if size == int(np.prod(expected_shapes(other)[name][0])):
                return f": this file looks like the {other!r} variant (use --arch={other})"
    return ""


# ----------------------------------------------------------------------------- caffemodel
def _caffe_message_class():
    """NetParameter with the subset of caffe.proto (proto2) needed to read weights.

    Field numbers from caffe.proto: NetParameter.layer=100 (LayerParameter: name=1, type=2,
    blobs=7), legacy NetParameter.layers=2 (V1LayerParameter: name=4, type=5 enum, blobs=6);
    BlobProto: num/channels/height/width=1..4, data=5, shape=7 (BlobShape.dim=1), double_data=8.
    """
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="ftjax_caffe_subset.proto",
                                             package="ftjax_caffe", syntax="proto2")

    def msg(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".ftjax_caffe.{type_name}"

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("BlobShape", ("dim", 1, F.TYPE_INT64, rep, None))
    msg("BlobProto", ("num", 1, F.TYPE_INT32, opt, None), ("channels", 2, F.TYPE_INT32, opt, None),
        ("height", 3, F.TYPE_INT32, opt, None), ("width", 4, F.TYPE_INT32, opt, None),
        ("data", 5, F.TYPE_FLOAT, rep, None), ("shape", 7, F.TYPE_MESSAGE, opt, "BlobShape"),
        ("double_data", 8, F.TYPE_DOUBLE, rep, None))
    msg("LayerParameter", ("name", 1, F.TYPE_STRING, opt, None),
        ("type", 2, F.TYPE_STRING, opt, None), ("blobs", 7, F.TYPE_MESSAGE, rep, "BlobProto"))
    msg("V1LayerParameter", ("name", 4, F.TYPE_STRING, opt, None),
        ("type", 5, F.TYPE_INT32, opt, None), ("blobs", 6, F.TYPE_MESSAGE, rep, "BlobProto"))
    msg("NetParameter", ("name", 1, F.TYPE_STRING, opt, None),
        ("layers", 2, F.TYPE_MESSAGE, rep, "V1LayerParameter"),
        ("layer", 100, F.TYPE_MESSAGE, rep, "LayerParameter"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ftjax_caffe.NetParameter"))


def _blob_array(blob) -> np.ndarray:
    data = np.asarray(blob.data if len(blob.data) else blob.double_data, np.float32)
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = tuple(d for d in (blob.num, blob.channels, blob.height, blob.width))
    if int(np.prod(shape)) == data.size and data.size:
        return data.reshape(shape)
    return data


def convert_caffemodel(path: str | os.PathLike) -> Params:
    """Read a BVLC AlexNet ``.caffemodel`` (``layer`` or legacy ``layers`` form) into Flax params.

    Group counts are read from the blob shapes, not from a prototxt (some copies of
    deploy.prototxt lack ``group: 2``), and must match Caffe AlexNet's.
    """
    path = _existing(path)
    net = _caffe_message_class()()
    try:
        net.ParseFromString(path.read_bytes())
    except message.DecodeError as e:
        raise WeightsError(f"{path}: not a readable caffemodel (protobuf decode failed: {e}); "
                           "the file may be truncated or of another format") from e
    blobs = {}
    for layer in list(net.layer) + list(net.layers):
        if layer.name in LAYERS and len(layer.blobs) >= 2:
            blobs[layer.name] = (_blob_array(layer.blobs[0]), _blob_array(layer.blobs[1]))
    if not blobs:
        raise WeightsError(f"{path}: no AlexNet layers with weights found; is this a caffemodel?")
    _check_groups(blobs, path)
    return _assemble(blobs, "caffe", path)


def _check_groups(blobs, path: Path) -> None:
    """Infer each conv layer's groups from its blob (O, I/g, kh, kw) and the previous layer."""
    cin = 3
    for name, spec in _CONVS["caffe"].items():
        w = blobs.get(name, (None,))[0]
        if w is None or w.ndim != 4:
            return  # reported with the layer's shapes by _assemble
        groups = cin // w.shape[1] if w.shape[1] and cin % w.shape[1] == 0 else 0
        if groups != spec.groups:
            raise WeightsError(f"{path}: {name} weights {w.shape} imply {groups} group(s) on "
                               f"{cin} input channels; Caffe AlexNet has {spec.groups}"
                               + _other_variant_hint(name, w.size, "caffe"))
        cin = w.shape[0]


# ----------------------------------------------------------------------------- torchvision
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
           "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
           "BoolStorage": np.bool_}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclasses.dataclass
class _Tensor:
    """A tensor as the pickle describes it, resolved against its storage bytes afterwards."""

    key: str
    dtype: type
    offset: int
    size: tuple
    stride: tuple

    def array(self, storages: Mapping[str, np.ndarray]) -> np.ndarray:
        buf = storages[self.key]
        if not self.size:
            return buf[self.offset:self.offset + 1].reshape(()).copy()
        itemsize = buf.itemsize
        return np.lib.stride_tricks.as_strided(
            buf[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *_):
    key, dtype = storage
    return _Tensor(key, dtype, offset, tuple(size), tuple(stride))


class _TensorUnpickler(pickle.Unpickler):
    """Rebuilds tensors and ordered dicts only; any other global in the file is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES and _DTYPES[name] is not None:
            return _DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only tensors are allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return (str(pid[2]), pid[1])  # (storage key, numpy dtype)


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A ``torch.save``d dict of tensors -> numpy arrays, without PyTorch.

    Handles the zip container (torch >= 1.6) and the legacy sequential-pickle format that the
    original torchvision AlexNet file uses.
    """
    path = _existing(path)
    try:
        if zipfile.is_zipfile(path):
            obj, storages = _read_zip(path)
        else:
            obj, storages = _read_legacy(path)
        out = {k: v.array(storages) for k, v in obj.items() if isinstance(v, _Tensor)}
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError, TypeError,
            IndexError, zipfile.BadZipFile) as e:
        raise WeightsError(f"{path}: not a readable PyTorch state_dict file ({e})") from e
    if not out:
        raise WeightsError(f"{path}: contains no tensors; expected a state_dict")
    return out


def _read_zip(path: Path):
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError("no data.pkl in the archive")
        prefix = pkl[0][: -len("data.pkl")]
        obj = _TensorUnpickler(io.BytesIO(z.read(pkl[0]))).load()
        keys = {t.key: t.dtype for t in obj.values() if isinstance(t, _Tensor)}
        storages = {k: np.frombuffer(z.read(f"{prefix}data/{k}"), dtype=dt)
                    for k, dt in keys.items()}
    return obj, storages


def _read_legacy(path: Path):
    with open(path, "rb") as f:
        if pickle.load(f) != _LEGACY_MAGIC:
            raise ValueError("not a PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian files are not supported")
        obj = _TensorUnpickler(f).load()
        keys = pickle.load(f)
        dtypes = {t.key: t.dtype for t in obj.values() if isinstance(t, _Tensor)}
        storages = {}
        for key in keys:
            dt = np.dtype(dtypes.get(str(key), np.uint8))
            (numel,) = np.frombuffer(f.read(8), "<i8")
            storages[str(key)] = np.frombuffer(f.read(int(numel) * dt.itemsize), dt)
            if storages[str(key)].size != numel:
                raise ValueError("file ends inside a tensor's data (truncated)")
    return obj, storages


def convert_torchvision(path: str | os.PathLike) -> Params:
    """Read a torchvision AlexNet state_dict file (``alexnet-owt-*.pth``) into Flax params."""
    path = Path(path)
    sd = read_torch_state_dict(path)
    where = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
             "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
             "fc7": "classifier.4", "fc8": "classifier.6"}
    blobs = {name: (sd[f"{k}.weight"], sd[f"{k}.bias"]) for name, k in where.items()
             if f"{k}.weight" in sd and f"{k}.bias" in sd}
    return _assemble(blobs, "torchvision", path)


CONVERTERS: dict[str, Callable[[str | os.PathLike], Params]] = {
    "caffe": convert_caffemodel, "torchvision": convert_torchvision}


# ----------------------------------------------------------------------------- save / load
def save(params: Mapping, path: str | os.PathLike) -> Path:
    """Write a params tree to ``.npz`` atomically: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {f"{layer}/{k}": np.asarray(v) for layer, d in params.items() for k, v in d.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **flat)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike) -> Params:
    """Read params written by :func:`save`."""
    path = _existing(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            params: Params = {}
            for key in z.files:
                layer, _, leaf = key.partition("/")
                params.setdefault(layer, {})[leaf] = z[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise WeightsError(f"{path}: not a readable ftjax params file ({e})") from e
    missing = [n for n in LAYERS if n not in params]
    if missing:
        raise WeightsError(f"{path}: missing layers {missing}; not an ftjax AlexNet params file")
    return params


def checksum(params: Mapping) -> str:
    """sha256 over every leaf in LAYERS order: the fingerprint ``ftjax.convert`` prints."""
    h = hashlib.sha256()
    for layer in LAYERS:
        for leaf in ("kernel", "bias"):
            a = np.ascontiguousarray(params[layer][leaf], np.float32)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- cache & download
def converted_path(variant: str) -> Path:
    """Where :func:`pretrained` keeps the converted ImageNet params of ``variant``."""
    return cache_dir() / f"alexnet_{variant}_imagenet.npz"


def file_hash(path: Path, name: str) -> str:
    h = hashlib.new(name)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, source: Source) -> None:
    """Raise if ``path`` is not the official file (its hash differs from the published one)."""
    got = file_hash(path, source.hash_name)
    if not got.startswith(source.hash_value):
        raise WeightsError(f"{path}: {source.hash_name} {got} does not match the official "
                           f"{source.filename} ({source.hash_value}); delete it and download "
                           f"again from {source.url}")


def _hash_text(source: Source) -> str:
    full = len(hashlib.new(source.hash_name).hexdigest())
    return ("" if len(source.hash_value) == full else "starting ") + source.hash_value


def download(source: Source, dest: Path, progress: bool = True) -> Path:
    """Fetch ``source`` to ``dest`` via a ``.part`` file; only a verified file gets its name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as r:
            total, done = int(r.headers.get("Content-Length") or 0), 0
            for chunk in iter(lambda: r.read(1 << 20), b""):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    pct = f" {100 * done / total:5.1f}%" if total else ""
                    print(f"\rdownloading {source.filename}: {done / 2**20:7.1f} MiB{pct}",
                          end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        verify(Path(tmp), source)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise WeightsError(
            f"could not download {source.url} ({e}). Fetch it on a machine that is online "
            f"({source.hash_name} {_hash_text(source)}) and put it at {dest}") from e
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def pretrained(variant: str = "caffe", progress: bool = True) -> Params:
    """ImageNet weights of ``variant`` as Flax params (1000-way fc8), converted once and cached.

    Looks for ``<cache>/<variant>_imagenet.npz``; else converts the official file found in the
    cache directory, downloading (and hash-checking) it when absent.
    """
    _check_variant(variant)
    source, root = SOURCES[variant], cache_dir()
    converted = converted_path(variant)
    if converted.exists():
        return load(converted)
    raw = root / source.filename
    if raw.exists():
        verify(raw, source)
    else:
        download(source, raw, progress)
    params = CONVERTERS[variant](raw)
    save(params, converted)
    return params


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    return path
