"""ImageNet AlexNet weights: preprocessing, Caffe/torchvision conversion, the local cache.

Everything here returns plain numpy pytrees ``{'conv1': {'kernel', 'bias'}, ..., 'fc8': {...}}`` in
the Flax layout of ``ftjax.models.AlexNet`` (HWIO kernels, (in, out) dense kernels, fc6 rows in
NHWC flatten order). Weights files come from the internet, so readers treat them as hostile:
they never execute code from a file (the caffemodel is decoded with a protobuf schema, every
pickle of a PyTorch file with an unpickler that allows no globals beyond tensors), check every
size and offset against the bytes present before allocating or viewing anything, and accept only
an AlexNet: exactly conv1..fc8, each of the variant's exact shapes, float, finite. Anything else
is a :class:`WeightsError` naming the file and what was expected.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import math
import os
import pickle
import socket
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import IO

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from ftjax.cache import cache_dir, process_alive
from ftjax.models.alexnet import _CONVS, LAYERS, VARIANTS, _check_variant

Params = dict[str, dict[str, np.ndarray]]

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


# ----------------------------------------------------------------------------- expected shapes
def expected_shapes(variant: str, num_classes: int = 1000,
                    pool5: int = 6) -> dict[str, tuple[tuple, tuple]]:
    """PyTorch/Caffe-layout (OIHW or (out, in)) weight and bias shapes of every layer.

    ``pool5`` is the side of the maps fc6 takes: 6 at the variant's input size.
    """
    _check_variant(variant)
    shapes, cin = {}, 3
    for name, spec in _CONVS[variant].items():
        shapes[name] = ((spec.features, cin // spec.groups, spec.kernel, spec.kernel),
                        (spec.features,))
        cin = spec.features
    fc_in = (cin * pool5 * pool5, 4096, 4096)
    for name, n_in, n_out in zip(("fc6", "fc7", "fc8"), fc_in, (4096, 4096, num_classes),
                                 strict=True):
        shapes[name] = ((n_out, n_in), (n_out,))
    return shapes


def _flax_shapes(variant: str, num_classes: int, pool5: int) -> dict[str, dict[str, tuple]]:
    """:func:`expected_shapes` in the layout :func:`_to_flax` produces (HWIO, (in, out))."""
    return {name: {"kernel": (*w[2:], w[1], w[0]) if len(w) == 4 else (w[1], w[0]), "bias": b}
            for name, (w, b) in expected_shapes(variant, num_classes, pool5).items()}


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


# ----------------------------------------------------------------------------- checks
_FLOATS = tuple(np.dtype(t) for t in (np.float16, np.float32, np.float64))
# What a decoder may raise on a corrupt or hostile file; each becomes a WeightsError naming it.
_DECODE_ERRORS = (ArithmeticError, AttributeError, EOFError, LookupError, MemoryError, OSError,
                  RuntimeError, TypeError, ValueError, pickle.UnpicklingError, struct.error,
                  zipfile.BadZipFile, zlib.error, message.DecodeError)


@contextlib.contextmanager
def _decoding(path: Path, what: str):
    """Whatever a corrupt or hostile file makes a decoder raise becomes one WeightsError."""
    try:
        yield
    except WeightsError:
        raise
    except _DECODE_ERRORS as e:
        raise WeightsError(f"{path}: not a readable {what} ({type(e).__name__}: {e})") from e


def _few(items: Collection) -> str:
    """A short listing of names a file chose (there may be millions, each of any length)."""
    shown = [f"{str(x)[:60]!r}" for x in list(items)[:5]]
    return "[" + ", ".join(shown) + (", ...]" if len(items) > 5 else "]")


def _check_dtype(path: Path, where: str, dtype: np.dtype) -> None:
    if dtype not in _FLOATS:
        raise WeightsError(f"{path}: {where} is {dtype}; expected float16, float32 or float64")


def _check_finite(path: Path, where: str, a: np.ndarray) -> None:
    bad = a.size - np.count_nonzero(np.isfinite(a))
    if bad:
        raise WeightsError(f"{path}: {where} has {bad} NaN or infinite values (of {a.size}); "
                           "expected finite weights")


def _assemble(blobs: Mapping[str, tuple[np.ndarray, np.ndarray]], variant: str,
              path: Path) -> Params:
    """Check every layer's blobs (the variant's exact shapes, floats, finite) and convert them to
    Flax layout. fc8 may have any number of outputs (a fine-tuned head)."""
    num_classes = blobs["fc8"][1].size if "fc8" in blobs else 1000
    params: Params = {}
    for name, (wshape, bshape) in expected_shapes(variant, num_classes or 1000).items():
        if name not in blobs:
            raise WeightsError(f"{path}: no layer {name!r} (found {_few(sorted(blobs))}); "
                               f"not an AlexNet of the {variant!r} variant")
        w, b = blobs[name]
        if w.shape != wshape or b.shape != bshape:
            raise WeightsError(
                f"{path}: layer {name!r} has weights of shape {w.shape} and bias of shape "
                f"{b.shape}; the {variant!r} variant needs {wshape} and {bshape}"
                + _other_variant_hint(name, w.shape, variant))
        _check_dtype(path, f"layer {name!r} weight", w.dtype)
        _check_dtype(path, f"layer {name!r} bias", b.dtype)
        with np.errstate(over="ignore"):  # a float64 beyond float32's range: inf, refused below
            params[name] = _to_flax(name, w, b)
        for leaf, a in params[name].items():
            _check_finite(path, f"{name}/{leaf}", a)
    return params


def _other_variant_hint(name: str, shape: tuple, variant: str) -> str:
    """A pointer to the right --arch when ``shape`` is the other variant's for this layer."""
    for other in VARIANTS:
        if other != variant and shape == expected_shapes(other)[name][0]:
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


def _caffe_layers(net, path: Path) -> dict[str, tuple]:
    """{name: (weights blob, bias blob)}: each AlexNet layer at most once, with exactly two
    blobs; a layer of another name holding weights is no part of AlexNet."""
    found: dict[str, tuple] = {}
    for layer in [*net.layer, *net.layers]:
        if not len(layer.blobs):
            continue
        name = layer.name
        if name not in LAYERS:
            raise WeightsError(f"{path}: layer {str(name)[:60]!r} holds weights; AlexNet has "
                               f"weights only in {LAYERS}")
        if name in found:
            raise WeightsError(f"{path}: two layers named {name!r} hold weights; expected one")
        if len(layer.blobs) != 2:
            raise WeightsError(f"{path}: layer {name!r} has {len(layer.blobs)} blobs; expected "
                               "two (weights and bias)")
        found[name] = (layer.blobs[0], layer.blobs[1])
    return found


def _declared_shape(blob, ndim: int) -> tuple[int, ...] | None:
    """The shape a blob declares, if any: BlobShape dims or legacy num/channels/height/width,
    whose leading 1s pad a blob of fewer than 4 dimensions (Caffe compares shapes so too)."""
    if blob.HasField("shape"):
        dims = list(blob.shape.dim)
    elif any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        dims = [blob.num, blob.channels, blob.height, blob.width]
    else:
        return None
    while len(dims) > ndim and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)


def _blob_array(path: Path, where: str, blob, expected: tuple) -> np.ndarray:
    """A blob's values in the shape it declares (``expected`` when it declares none and has as
    many values), which they must fill exactly; compared with ``expected`` by the caller."""
    if len(blob.data) and len(blob.double_data):
        raise WeightsError(f"{path}: {where} holds both float and double values; expected one")
    double = len(blob.double_data) > 0
    values = blob.double_data if double else blob.data
    shape = _declared_shape(blob, len(expected))
    if shape is None:
        shape = expected if math.prod(expected) == len(values) else (len(values),)
    if (len(shape) != len(expected) or not len(values) or any(d < 0 for d in shape)
            or math.prod(shape) != len(values)):
        raise WeightsError(f"{path}: {where} has shape {str(shape)[:80]} and {len(values)} "
                           f"values; expected shape {expected}")
    return np.asarray(values, np.float64 if double else np.float32).reshape(shape)


def convert_caffemodel(path: str | os.PathLike) -> Params:
    """Read a BVLC AlexNet ``.caffemodel`` (``layer`` or legacy ``layers`` form) into Flax params.

    Group counts are read from the blob shapes, not from a prototxt (some copies of
    deploy.prototxt lack ``group: 2``), and must match Caffe AlexNet's.
    """
    path = _existing(path)
    net = _caffe_message_class()()
    with _decoding(path, "caffemodel; the file may be truncated or of another format"):
        net.ParseFromString(path.read_bytes())
    layers = _caffe_layers(net, path)
    if not layers:
        raise WeightsError(f"{path}: no AlexNet layers with weights found; is this a caffemodel?")
    fc8 = layers.get("fc8")
    num_classes = len(fc8[1].data) + len(fc8[1].double_data) if fc8 else 1000
    shapes = expected_shapes("caffe", num_classes or 1000)
    blobs = {name: (_blob_array(path, f"layer {name!r} weight blob", w, shapes[name][0]),
                    _blob_array(path, f"layer {name!r} bias blob", b, shapes[name][1]))
             for name, (w, b) in layers.items()}
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
                               + _other_variant_hint(name, w.shape, "caffe"))
        cin = w.shape[0]


# ----------------------------------------------------------------------------- torchvision
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
           "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
           "BoolStorage": np.bool_}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCHVISION_KEYS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
                     "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
                     "fc7": "classifier.4", "fc8": "classifier.6"}


@dataclasses.dataclass(frozen=True)
class _Storage:
    """A storage as the pickle names it; its bytes come separately. Only persistent_load makes
    one, so a pickle cannot pass anything else off as a storage."""

    key: str
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _Tensor:
    """A view (offset, size, stride: non-negative ints) of a storage, resolved afterwards."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self, storages: Mapping[str, np.ndarray]) -> np.ndarray:
        """The view's values, copied out once every index it reads is known to lie inside the
        storage: numpy's as_strided checks nothing, and would read (or crash on) foreign memory."""
        buf = storages.get(self.storage.key)
        if buf is None:
            raise ValueError(f"a tensor views storage {self.storage.key[:40]!r}, which the file "
                             "lacks")
        count = math.prod(self.size)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if self.offset > buf.size or count > buf.size or (count and last >= buf.size):
            raise ValueError(f"a tensor of size {self.size}, stride {self.stride} at offset "
                             f"{self.offset} reaches outside its storage of {buf.size} values")
        return np.lib.stride_tricks.as_strided(
            buf[self.offset:], shape=self.size,
            strides=[s * buf.itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *_) -> _Tensor:
    """torch._utils._rebuild_tensor_v2, recording the view once its parts are well formed."""
    numbers = (offset, *size, *stride) if type(size) is type(stride) is tuple else ()
    if (not isinstance(storage, _Storage) or not numbers or len(size) != len(stride)
            or not all(type(n) is int and n >= 0 for n in numbers)):
        raise pickle.UnpicklingError(f"malformed tensor: offset {offset!r:.40}, size "
                                     f"{size!r:.80}, stride {stride!r:.80}")
    return _Tensor(storage, offset, size, stride)


class _PlainUnpickler(pickle._Unpickler):
    """Plain values only (numbers, strings, containers): every global in the file is refused,
    so no pickle in it can call anything.

    The pure-Python unpickler, not the C one: the C one keeps its memo in an array indexed by
    the file's numbers, so a 12-byte pickle (``LONG_BINPUT 2**28``) takes gigabytes. These
    pickles are small (the tensors' data is elsewhere), so its speed does not matter.
    """

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module[:60]}.{name[:60]}: only tensors "
                                     "are allowed")


class _TensorUnpickler(_PlainUnpickler):
    """Rebuilds tensors and ordered dicts only; any other global in the file is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and _DTYPES.get(name) is not None:
            return _DTYPES[name]
        return super().find_class(module, name)

    def persistent_load(self, pid):
        """('storage', type, key, location, numel[, view]) -> the storage it names."""
        if not (type(pid) is tuple and len(pid) in (5, 6) and pid[0] == "storage"
                and any(pid[1] is t for t in _DTYPES.values() if t is not None)
                and type(pid[2]) is str and pid[5:] in ((), (None,))):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.100}")
        return _Storage(pid[2], np.dtype(pid[1]))


def _state_dict(obj) -> dict[str, _Tensor]:
    """The unpickled object as a state_dict: tensors by name, nothing else."""
    if not isinstance(obj, dict):
        raise ValueError(f"it holds a {type(obj).__name__}, not a state_dict")
    for key, value in obj.items():
        if type(key) is not str or not isinstance(value, _Tensor):
            raise ValueError(f"entry {str(key)[:60]!r} is a {type(value).__name__}, not a "
                             "tensor; expected a state_dict")
    return obj


def _storage_dtypes(tensors: Mapping[str, _Tensor]) -> dict[str, np.dtype]:
    """Each storage's dtype, from the tensors that view it, which must agree."""
    dtypes: dict[str, np.dtype] = {}
    for t in tensors.values():
        if dtypes.setdefault(t.storage.key, t.storage.dtype) != t.storage.dtype:
            raise ValueError(f"storage {t.storage.key[:40]!r} is viewed as both "
                             f"{dtypes[t.storage.key]} and {t.storage.dtype}")
    return dtypes


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A ``torch.save``d dict of tensors -> numpy arrays, without PyTorch.

    Handles the zip container (torch >= 1.6) and the legacy sequential-pickle format that the
    original torchvision AlexNet file uses. Every size the file states is checked against the
    bytes it holds before anything is allocated or viewed.
    """
    path = _existing(path)
    with _decoding(path, "PyTorch state_dict file"):
        if zipfile.is_zipfile(path):
            tensors, storages = _read_zip(path)
        else:
            tensors, storages = _read_legacy(path.read_bytes())
        out = {k: v.array(storages) for k, v in tensors.items()}
    if not out:
        raise WeightsError(f"{path}: contains no tensors; expected a state_dict")
    return out


def _unique_names(z: zipfile.ZipFile) -> list[str]:
    """The archive's member names; a name given twice would let two readers see two files."""
    names = z.namelist()
    if len(set(names)) != len(names):
        twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)
        raise ValueError(f"the archive holds {_few(twice)} more than once")
    return names


def _stored_member(z: zipfile.ZipFile, name: str, limit: int) -> zipfile.ZipInfo:
    """A member written uncompressed (as torch.save and ftjax's save write them) and no larger
    than the archive's ``limit`` bytes: a compressed one could expand without bound."""
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or not info.file_size <= limit:
        raise ValueError(f"archive member {name[:60]!r} is compressed, or claims more bytes "
                         f"({info.file_size}) than the archive has ({limit})")
    return info


def _read_zip(path: Path) -> tuple[dict[str, _Tensor], dict[str, np.ndarray]]:
    limit = path.stat().st_size
    with zipfile.ZipFile(path) as z:
        names = _unique_names(z)
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError("no data.pkl in the archive")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and z.read(
                _stored_member(z, f"{prefix}byteorder", limit)) != b"little":
            raise ValueError("big-endian files are not supported")
        tensors = _state_dict(_TensorUnpickler(
            io.BytesIO(z.read(_stored_member(z, pkl[0], limit)))).load())
        storages = {}
        for key, dtype in _storage_dtypes(tensors).items():
            raw = z.read(_stored_member(z, f"{prefix}data/{key}", limit))
            if len(raw) % dtype.itemsize:
                raise ValueError(f"storage {key[:40]!r} has {len(raw)} bytes, not a whole number "
                                 f"of {dtype} values")
            storages[key] = np.frombuffer(raw, dtype)
    return tensors, storages


def _read_legacy(data: bytes) -> tuple[dict[str, _Tensor], dict[str, np.ndarray]]:
    """Magic number, protocol, system info, the tensors, the storage keys (five pickles), then
    each storage: its element count (int64) and its bytes."""
    f = io.BytesIO(data)
    if _PlainUnpickler(f).load() != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch file (bad magic number)")
    _PlainUnpickler(f).load()  # protocol version
    sys_info = _PlainUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise ValueError(f"not a little-endian file (system info {sys_info!r:.80})")
    tensors = _state_dict(_TensorUnpickler(f).load())
    keys = _PlainUnpickler(f).load()
    if (type(keys) is not list or not all(type(k) is str for k in keys)
            or len(set(keys)) != len(keys)):
        raise ValueError("the list of storage keys is malformed")
    dtypes = _storage_dtypes(tensors)
    return tensors, {k: _legacy_storage(f, data, np.dtype(dtypes.get(k, np.uint8))) for k in keys}


def _legacy_storage(f: io.BytesIO, data: bytes, dtype: np.dtype) -> np.ndarray:
    """The storage at ``f``'s position, whose stated length must fit the bytes left."""
    head = f.read(8)
    left = len(data) - f.tell()
    numel = int.from_bytes(head, "little", signed=True) if len(head) == 8 else -1
    if not 0 <= numel * dtype.itemsize <= left:
        raise ValueError(f"a storage states {numel} values of {dtype} with {left} bytes left in "
                         "the file (truncated or corrupt)")
    array = np.frombuffer(data, dtype, count=numel, offset=f.tell())
    f.seek(array.nbytes, io.SEEK_CUR)
    return array


def convert_torchvision(path: str | os.PathLike) -> Params:
    """Read a torchvision AlexNet state_dict file (``alexnet-owt-*.pth``) into Flax params."""
    path = Path(path)
    sd = read_torch_state_dict(path)
    blobs = {name: (sd[f"{k}.weight"], sd[f"{k}.bias"]) for name, k in _TORCHVISION_KEYS.items()
             if f"{k}.weight" in sd and f"{k}.bias" in sd}
    params = _assemble(blobs, "torchvision", path)
    extra = sorted(set(sd) - {f"{k}.{leaf}" for k in _TORCHVISION_KEYS.values()
                              for leaf in ("weight", "bias")})
    if extra:
        raise WeightsError(f"{path}: unexpected entries {_few(extra)}; a torchvision AlexNet "
                           "state_dict holds only its eight layers' weights and biases")
    return params


CONVERTERS: dict[str, Callable[[str | os.PathLike], Params]] = {
    "caffe": convert_caffemodel, "torchvision": convert_torchvision}


# ----------------------------------------------------------------------------- save / load
_LEAVES = ("kernel", "bias")


def save(params: Mapping, path: str | os.PathLike) -> Path:
    """Write a params tree to ``.npz`` atomically: a reader never sees a half-written file, and
    a failed or killed writer leaves no temporary behind (see :func:`_write_atomically`)."""
    path = Path(path)
    flat = {f"{layer}/{k}": np.asarray(v) for layer, d in params.items() for k, v in d.items()}
    try:
        _write_atomically(path, lambda f: np.savez(f, **flat))
    except OSError as e:
        raise WeightsError(f"{path}: cannot write the params file ({e.strerror or e}); nothing "
                           "was written") from e
    return path


def load(path: str | os.PathLike) -> Params:
    """Read params written by :func:`save`, checked as strictly as a converted file.

    Exactly conv1..fc8, each a ``kernel`` and a ``bias`` (float16/32/64, all finite) of one
    variant's shapes, except that fc8 may have any width (a fine-tuned head) and fc6 may take
    pool5 maps of any square size (a net trained from scratch at another input size). Headers
    are checked before any array is read; members must be uncompressed (as :func:`save` writes
    them), so a small file cannot expand into a huge one.
    """
    path = _existing(path)
    with _decoding(path, "ftjax params file (.npz)"), zipfile.ZipFile(path) as z:
        members = _npz_members(path, _unique_names(z))
        limit = path.stat().st_size
        infos = {key: _stored_member(z, name, limit) for key, name in members.items()}
        headers = {}
        for key, info in infos.items():
            with z.open(info) as f:
                headers[key] = _npy_header(f)
        _check_headers(path, headers)
        params: Params = {layer: {} for layer in LAYERS}
        for (layer, leaf), info in infos.items():
            with z.open(info) as f:
                params[layer][leaf] = np.lib.format.read_array(f, allow_pickle=False)
            _check_finite(path, f"{layer}/{leaf}", params[layer][leaf])
    return params


def _npz_members(path: Path, names: list[str]) -> dict[tuple[str, str], str]:
    """{(layer, leaf): member name}: exactly conv1..fc8, each exactly a kernel and a bias."""
    want = {(layer, leaf): f"{layer}/{leaf}.npy" for layer in LAYERS for leaf in _LEAVES}
    unexpected = sorted(set(names) - set(want.values()))
    if unexpected:
        raise WeightsError(f"{path}: unexpected entries {_few(unexpected)}; an ftjax params "
                           f"file holds a kernel and a bias for each of {LAYERS}")
    missing = [f"{layer}/{leaf}" for (layer, leaf), name in want.items() if name not in names]
    if missing:
        raise WeightsError(f"{path}: missing layers or leaves {_few(missing)}; not an ftjax "
                           "AlexNet params file")
    return want


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of an .npy stream, read without touching its data."""
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version} is not supported")
    return readers[version](f)


def _check_headers(path: Path, headers: Mapping[tuple[str, str], tuple]) -> None:
    """Every leaf a float of the shape one variant needs (see :func:`load`)."""
    for (layer, leaf), (_, _, dtype) in headers.items():
        _check_dtype(path, f"{layer}/{leaf}", dtype)
    shapes = {layer: {leaf: headers[layer, leaf][0] for leaf in _LEAVES} for layer in LAYERS}
    mismatches = [_flax_mismatch(shapes, variant) for variant in VARIANTS]
    if None not in mismatches:
        raise WeightsError(f"{path}: {max(mismatches)[1]}; not an ftjax AlexNet params file")


def _flax_mismatch(shapes: Mapping[str, Mapping[str, tuple]],
                   variant: str) -> tuple[int, str] | None:
    """(position, description) of the first leaf whose shape is not ``variant``'s, or None."""
    fc8 = shapes["fc8"]["bias"]
    num_classes = fc8[0] if len(fc8) == 1 and fc8[0] else 1000
    want = _flax_shapes(variant, num_classes, _pool5_side(shapes["fc6"]["kernel"], variant))
    for i, (layer, leaf) in enumerate((la, le) for la in LAYERS for le in _LEAVES):
        if shapes[layer][leaf] != want[layer][leaf]:
            return i, (f"{layer}/{leaf} has shape {shapes[layer][leaf]}; the {variant!r} variant "
                       f"needs {want[layer][leaf]}")
    return None


def _pool5_side(fc6_kernel: tuple, variant: str) -> int:
    """The side of the square pool5 maps a Flax fc6 kernel (rows = conv5 channels x side^2)
    takes; 6, the variant's own, when its rows fit no square."""
    channels = _CONVS[variant]["conv5"].features
    rows = fc6_kernel[0] if fc6_kernel else 0
    side = math.isqrt(rows // channels)
    return side if side and side * side * channels == rows else 6


def checksum(params: Mapping) -> str:
    """sha256 over every leaf in LAYERS order: the fingerprint ``ftjax.convert`` prints."""
    h = hashlib.sha256()
    for layer in LAYERS:
        for leaf in _LEAVES:
            a = np.ascontiguousarray(params[layer][leaf], np.float32)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- atomic writes
def _write_atomically(path: Path, write: Callable[[IO[bytes]], None],
                      check: Callable[[Path], None] | None = None) -> None:
    """``write`` (then ``check``) a temporary beside ``path``, renamed to ``path`` once complete.

    The temporary, ``.{name}.{host}.{pid}.{random}.part``, is removed if anything fails; one
    left by a writer that was killed is removed by the next write to ``path`` on its host.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temporary_prefix(path)}{os.getpid()}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete this host's temporaries for ``path`` whose writer no longer runs. Those of live
    writers (a concurrent save) and of other hosts sharing the directory are left alone."""
    prefix = _temporary_prefix(path)
    for p in path.parent.iterdir():
        pid = p.name[len(prefix):].partition(".")[0]
        if (p.name.startswith(prefix) and p.name.endswith(".part") and pid.isdigit()
                and not process_alive(int(pid))):
            p.unlink(missing_ok=True)


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
    got = file_hash(_existing(path), source.hash_name)
    if not got.startswith(source.hash_value):
        raise WeightsError(f"{path}: {source.hash_name} {got} does not match the official "
                           f"{source.filename} ({source.hash_value}); delete it and download "
                           f"again from {source.url}")


def _hash_text(source: Source) -> str:
    full = len(hashlib.new(source.hash_name).hexdigest())
    return ("" if len(source.hash_value) == full else "starting ") + source.hash_value


def download(source: Source, dest: Path, progress: bool = True) -> Path:
    """Fetch ``source`` to ``dest`` via a temporary; only a verified file gets its name."""
    try:
        _write_atomically(dest, lambda f: _fetch(source, f, progress),
                          check=lambda tmp: verify(tmp, source))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise WeightsError(
            f"could not download {source.url} ({e}). Fetch it on a machine that is online "
            f"({source.hash_name} {_hash_text(source)}) and put it at {dest}") from e
    return dest


def _fetch(source: Source, out: IO[bytes], progress: bool) -> None:
    with urllib.request.urlopen(source.url, timeout=60) as r:
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
