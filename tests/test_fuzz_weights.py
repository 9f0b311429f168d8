"""Hostile and broken weights files: fuzzed inputs for every reader, and named regression tests
for each finding of the issue (code from a file ran, segfaults, tracebacks, wrong data accepted,
leftovers, errors that did not name the file).

Hypothesis is derandomized: every run draws the same inputs, so CI cannot turn red by chance.
Every input ends in a WeightsError naming the file, or is accepted where the mutation left a
genuinely valid file (each case says when that can happen: ``valid`` True, False, or None for
either); no code from the file runs (the hostile pickles would create MARKER); nothing crashes
(the PyTorch readers, which view storages with as_strided, run in a child process); every read
takes under READ_SECONDS; nothing is written beside the input.

Inputs per family, each asserted (at least MIN_INPUTS) and printed by its test: caffemodel 50,
zip .pth 52, legacy .pth 48, .npz 51; every kind of mutation has its own draws (5 each, 3 for
.npz), fewer where fewer exist (a compressed archive is one input).
"""

import collections
import io
import json
import math
import os
import pickle
import pickletools
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import caffe_wire
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftjax import weights
from ftjax.models.alexnet import LAYERS

ROOT = Path(__file__).resolve().parents[1]
READ_SECONDS = 5.0
MIN_INPUTS = 30
MARKER = "PWNED"  # what every hostile pickle tries to create beside the file it is in


def fuzz(examples: int):
    """Derandomized; some strategies build a 40 MB file, which is not slow for what it is."""
    return settings(derandomize=True, max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def read(fn, path: Path, valid: bool | None = False, fragment: str = ""):
    """fn(path) in under READ_SECONDS: its result where ``valid`` allows, else None after a
    WeightsError that names the file and says ``fragment``."""
    start = time.perf_counter()
    try:
        result = fn(path)
    except weights.WeightsError as e:
        assert valid is not True, f"valid file refused: {e}"
        assert str(e).startswith(str(path)) and fragment in str(e), str(e)
        result = None
    else:
        assert valid is not False, f"{path} accepted"
    assert time.perf_counter() - start < READ_SECONDS, f"{fn.__name__}({path}) was slow"
    return result


def only(folder: Path, *names: Path) -> None:
    """Nothing beside the inputs: no output, no temporary, no marker of code that ran."""
    assert sorted(folder.iterdir()) == sorted(names)


def flip_bits(data: bytes, bits: list[int]) -> bytes:
    out = bytearray(data)
    for bit in bits:
        out[bit // 8 % len(out)] ^= 1 << bit % 8
    return bytes(out)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def rezip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def with_duplicate(members: dict[str, bytes], name: str) -> bytes:
    """An archive of ``members`` holding ``name`` a second time (zipfile warns, and obeys)."""
    buf = io.BytesIO(rezip(members))
    with zipfile.ZipFile(buf, "a") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z.writestr(name, members[name])
    return buf.getvalue()


# ----------------------------------------------------------------------------- hostile pickles
class Call:
    """Pickles as the call ``fn(*args)``: what a hostile file puts in a pickle."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def hostile(marker: Path, which: int) -> Call:
    """One of four ways a pickle runs code, each creating ``marker``."""
    create = f"open({str(marker)!r}, 'w').close()"
    return [Call(os.system, f"touch '{marker}'"), Call(eval, create), Call(exec, create),
            Call(subprocess.call, ["touch", str(marker)])][which % 4]


def hostile_pickle(marker: Path, which: int, protocol: int, nested: bool) -> bytes:
    payload = hostile(marker, which)
    return pickle.dumps({"features.0.weight": payload} if nested else payload, protocol)


draw_hostile = st.tuples(st.integers(0, 3), st.integers(0, 5), st.booleans())  # hostile_pickle


# ----------------------------------------------------------------------------- torch files
def value(x) -> bytes:
    """Pickle opcodes pushing ``x`` (no protocol header, no STOP)."""
    return pickle.dumps(x, protocol=2)[2:-1]


def global_(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def pid(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def storage_pid(key: str, storage: str = "FloatStorage", legacy: bool = False,
                numel: int = 4) -> bytes:
    """The persistent id torch.save writes for a storage: ('storage', type, key, location,
    numel[, view metadata]). torch.load trusts its numel; ftjax counts the bytes."""
    return pid(value("storage"), global_("torch", storage), value(key), value("cpu"),
               value(numel), b"N" if legacy else b"")


def tensor_pickle(tensors: dict[str, tuple], legacy: bool) -> bytes:
    """The state_dict pickle as torch.save writes it (an OrderedDict of _rebuild_tensor_v2
    calls), from name -> (persistent id, offset, size, stride): the tests' own writer, so that
    views can lie."""
    out = b"\x80\x02" + global_("collections", "OrderedDict") + b")R("
    for name, (storage, offset, size, stride) in tensors.items():
        out += (value(name) + global_("torch._utils", "_rebuild_tensor_v2") + b"(" + storage
                + b"Q" + value(offset) + value(size) + value(stride) + b"\x89"
                + global_("collections", "OrderedDict") + b")RtR")
    return out + b"u."


SMALL = {"features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,)}  # torchvision's conv1
WEIGHT_VIEW = (0, SMALL["features.0.weight"], (363, 121, 11, 1))
WEIGHT_NUMEL = math.prod(SMALL["features.0.weight"])
# The weight's storage (float32 bytes) named as another type: (valid read, what the error says).
STORAGES = {"FloatStorage": (True, "no layer 'conv2'"), "DoubleStorage": (False, "outside"),
            "LongStorage": (False, "outside"), "HalfStorage": (True, ""),
            "ShortStorage": (True, "is int16"), "IntStorage": (True, "is int32"),
            "CharStorage": (True, "is int8"), "ByteStorage": (True, "is uint8"),
            "BoolStorage": (True, "is bool"), "BFloat16Storage": (False, "refusing"),
            "EvilStorage": (False, "refusing")}


def pid_lies(key: str, legacy: bool) -> list[bytes]:
    """Persistent ids that are not a storage's."""
    tail = (value("cpu"), value(0), b"N" if legacy else b"")
    return [value("storage"), pid(value("tensor"), global_("torch", "FloatStorage"),
                                  value(key), *tail),
            pid(value("storage"), global_("collections", "OrderedDict"), value(key), *tail),
            pid(value("storage"), global_("posix", "system"), value(key), *tail),
            pid(value("storage"), global_("torch", "FloatStorage"), value(0), *tail),
            pid(value("storage"), global_("torch", "FloatStorage"), value(key)),
            pid(value("storage"), global_("torch", "FloatStorage"), value(key), value("cpu"),
                value(0), value((0, 4))),
            storage_pid("no-such-storage", legacy=legacy)]


def small_pickle(keys: list[str], legacy: bool, weight: tuple = WEIGHT_VIEW,
                 weight_pid: bytes | None = None) -> bytes:
    """SMALL's state_dict pickle over storages ``keys``, the weight viewed as ``weight``
    (offset, size, stride) of the storage ``weight_pid`` names."""
    return tensor_pickle({
        "features.0.weight": (weight_pid or storage_pid(keys[0], legacy=legacy,
                                                        numel=WEIGHT_NUMEL), *weight),
        "features.0.bias": (storage_pid(keys[1], legacy=legacy, numel=64), 0, (64,), (1,))},
        legacy)


def view_inside(offset, size, stride, numel: int) -> bool:
    """The oracle for views: non-negative ints, inside the storage, holding no more values than
    it (only a broadcast view would, and no weights file has one)."""
    numbers = (offset, *size, *stride) if type(size) is type(stride) is tuple else ()
    if not numbers or len(size) != len(stride):
        return False
    if not all(type(n) is int and n >= 0 for n in numbers):
        return False
    if 0 in size:
        return offset <= numel
    return math.prod(size) <= numel and offset + sum(
        (n - 1) * s for n, s in zip(size, stride, strict=True)) < numel


@st.composite
def views(draw) -> tuple:
    """(offset, size, stride): mostly plausible ints, often lies (negative, huge, not ints,
    lengths that differ)."""
    lie = st.one_of(st.integers(-3, -1), st.sampled_from(
        [363, WEIGHT_NUMEL - 1, WEIGHT_NUMEL, 10**9, 2**31, 2**40, 2**62, 2**63, 2**70, 1.5,
         "3", None]))
    number = st.one_of(st.integers(0, 130), lie)
    ndim = draw(st.integers(0, 4))
    size = tuple(draw(number) for _ in range(ndim))
    stride = tuple(draw(number) for _ in range(ndim + draw(st.sampled_from([0, 0, 0, 1, -1]))))
    return draw(number), size, stride


def saved(obj, legacy: bool) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def legacy_parts(data: bytes) -> list[bytes]:
    """A legacy file's five pickles (magic number, protocol, system info, tensors, storage keys)
    then its storages (each an int64 count and the bytes)."""
    f, parts, start = io.BytesIO(data), [], 0
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
        parts.append(data[start:f.tell()])
        start = f.tell()
    return [*parts, data[start:]]


@pytest.fixture(scope="module")
def small_sd():
    torch.manual_seed(0)
    return collections.OrderedDict((k, torch.randn(s)) for k, s in SMALL.items())


@pytest.fixture(scope="module")
def zip_pth(small_sd):
    """The small state_dict saved by torch (zip), as members, and their name prefix."""
    buf = io.BytesIO(saved(small_sd, legacy=False))
    with zipfile.ZipFile(buf) as z:
        members = {n: z.read(n) for n in z.namelist()}
    prefix = next(n for n in members if n.endswith("data.pkl"))[: -len("data.pkl")]
    # The tests' pickle writer writes what torch does: torch reads it back the same.
    mine = {**members, f"{prefix}data.pkl": small_pickle(["0", "1"], legacy=False)}
    back = torch.load(io.BytesIO(rezip(mine)))
    assert all(torch.equal(back[k], small_sd[k]) for k in SMALL)
    return members, prefix


@pytest.fixture(scope="module")
def legacy_pth(small_sd):
    """The small state_dict saved by torch (legacy format), in parts, and its storage keys,
    the weight's first (the file lists them sorted, and stores them in that order)."""
    parts = legacy_parts(saved(small_sd, legacy=True))
    keys = pickle.loads(parts[4])  # a plain list of str
    return parts, keys if int.from_bytes(parts[5][:8], "little") == WEIGHT_NUMEL else keys[::-1]


_WORKER = """
import json, sys, time
from ftjax import weights
for path in sys.argv[1:]:
    row = {"path": path}
    for fn in (weights.read_torch_state_dict, weights.convert_torchvision):
        start = time.perf_counter()
        try:
            out = fn(path)
            row[fn.__name__] = {k: [list(v.shape), str(v.dtype)] for k, v in out.items()}
        except weights.WeightsError as e:
            row[fn.__name__] = "WeightsError: " + str(e)
        row[fn.__name__ + "_seconds"] = time.perf_counter() - start
    print(json.dumps(row), flush=True)
"""


def read_in_child(cases: dict[Path, tuple]) -> None:
    """Read, then convert, each file in one child process, which must neither crash nor raise
    anything but WeightsError (a bad as_strided view would kill it, not the test run); then
    check each case's (kind, valid, fragment of the message) against what it reported."""
    r = subprocess.run([sys.executable, "-c", _WORKER, *map(str, cases)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert r.returncode == 0, f"child died ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr}"
    rows = {row["path"]: row for row in map(json.loads, r.stdout.splitlines())}
    for path, (kind, valid, fragment) in cases.items():
        row = rows[str(path)]
        got, convert = row["read_torch_state_dict"], row["convert_torchvision"]
        assert max(row["read_torch_state_dict_seconds"],
                   row["convert_torchvision_seconds"]) < READ_SECONDS, (kind, row)
        # The small files hold conv1 only: converting one always fails, naming the file.
        assert convert.startswith(f"WeightsError: {path}"), (kind, convert)
        if isinstance(got, str):
            assert valid is not True and got.startswith(f"WeightsError: {path}"), (kind, got)
        else:
            assert valid is not False, (kind, got)
        assert fragment in convert, (kind, fragment, convert)
    folder = next(iter(cases)).parent
    only(folder, *cases)


def fuzz_each(kinds: tuple[str, ...], strategy, examples: int, check) -> collections.Counter:
    """``check`` ``examples`` derandomized draws of ``strategy(kind)`` for each kind (drawing
    the kind too would starve some kinds); the number checked of each kind."""
    seen: collections.Counter = collections.Counter()
    for kind in kinds:
        @fuzz(examples)
        @given(strategy(kind))
        def run(case):
            check(case)
            seen[case[0]] += 1

        run()
    return seen


def report(family: str, seen: collections.Counter) -> None:
    print(f"{family}: {sum(seen.values())} inputs", dict(seen))
    assert sum(seen.values()) >= MIN_INPUTS


def storing(folder: Path, suffix: str, cases: dict[Path, tuple]):
    """A check that writes each case's file into ``folder`` for a child process to read."""
    def store(case: tuple) -> None:
        kind, data, valid, fragment = case
        path = folder / f"{len(cases):03d}-{kind.replace(' ', '-')}{suffix}"
        path.write_bytes(data)
        cases[path] = (kind, valid, fragment)
    return store


def truncated(draw, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data) - 1))]


def flipped(draw, data: bytes) -> bytes:
    bits = draw(st.lists(st.integers(0, 8 * len(data) - 1), min_size=1, max_size=8))
    return flip_bits(data, bits)


ZIP_KINDS = ("hostile", "view", "pid", "storage type", "storage cut", "missing", "byteorder",
             "compressed", "duplicate", "truncate", "flip", "random")


@st.composite
def zip_cases(draw, kind: str, members: dict[str, bytes], prefix: str, marker: Path) -> tuple:
    """(kind, torch.save's zip archive of SMALL mutated so, valid, what the error says)."""
    pkl, keys, new, valid, fragment = f"{prefix}data.pkl", ["0", "1"], dict(members), False, ""
    if kind == "hostile":
        new[pkl], fragment = hostile_pickle(marker, *draw(draw_hostile)), "refusing to load"
    elif kind == "view":
        view = draw(views())
        new[pkl], valid = small_pickle(keys, False, view), view_inside(*view, WEIGHT_NUMEL)
    elif kind == "pid":
        new[pkl] = small_pickle(keys, False, weight_pid=draw(st.sampled_from(pid_lies("0",
                                                                                      False))))
    elif kind == "storage type":  # the weight's float32 bytes named as another type
        storage = draw(st.sampled_from(sorted(STORAGES)))
        new[pkl] = small_pickle(keys, False, weight_pid=storage_pid("0", storage))
        valid, fragment = STORAGES[storage]
    elif kind == "storage cut":  # a storage cut short, or grown by zeros
        name = f"{prefix}data/{draw(st.sampled_from(keys))}"
        cut = draw(st.integers(0, len(members[name]) + 8))
        new[name] = (members[name] + bytes(8))[:cut]
        valid = cut == len(members[name]) or (cut > len(members[name]) and cut % 4 == 0)
    elif kind == "missing":  # only data.pkl and the storages are needed
        name = draw(st.sampled_from(sorted(members)))
        del new[name]
        valid = name not in (pkl, f"{prefix}data/0", f"{prefix}data/1")
    elif kind == "byteorder":
        new[f"{prefix}byteorder"], fragment = b"big", "big-endian"
    archive = rezip(new)
    if kind == "compressed":
        archive, fragment = rezip(members, zipfile.ZIP_DEFLATED), "compressed"
    elif kind == "duplicate":
        archive = with_duplicate(members, draw(st.sampled_from(sorted(members))))
        fragment = "more than once"
    elif kind == "truncate":
        archive = truncated(draw, archive)
    elif kind == "flip":  # a flip in float data, or in a member nobody reads, is harmless
        archive, valid = flipped(draw, archive), None
    elif kind == "random":
        archive = draw(st.binary(max_size=4096))
    return kind, archive, valid, fragment


def test_zip_pth_family(zip_pth, tmp_path_factory):
    """torch.save's zip archive: data.pkl replaced (hostile pickles, lying views and persistent
    ids, other storage types), members cut, dropped, compressed or doubled, big-endian; the
    archive truncated, bit-flipped, or random bytes."""
    (members, prefix), folder, cases = zip_pth, tmp_path_factory.mktemp("zip"), {}
    seen = fuzz_each(ZIP_KINDS, lambda kind: zip_cases(kind, members, prefix, folder / MARKER),
                     5, storing(folder, ".pth", cases))
    read_in_child(cases)
    report("zip .pth", seen)


LEGACY_KINDS = ("hostile", "view", "pid", "count", "keys", "magic", "system", "truncate", "flip",
                "random")


@st.composite
def legacy_cases(draw, kind: str, parts: list[bytes], keys: list[str], marker: Path) -> tuple:
    """(kind, torch.save's legacy file of SMALL mutated so, valid, what the error says)."""
    new, valid, fragment = list(parts), False, ""
    if kind == "hostile":  # any of the five pickles, the first included
        new[draw(st.integers(0, 4))] = hostile_pickle(marker, *draw(draw_hostile))
        fragment = "refusing to load"
    elif kind == "view":
        view = draw(views())
        new[3], valid = small_pickle(keys, True, view), view_inside(*view, WEIGHT_NUMEL)
    elif kind == "pid":
        new[3] = small_pickle(keys, True, weight_pid=draw(st.sampled_from(pid_lies(keys[0],
                                                                                   True))))
    elif kind == "count":  # a storage's element count lies (2**40, 2**62: no allocation)
        at = draw(st.sampled_from([0, 8 + 4 * int.from_bytes(parts[5][:8], "little")]))
        true = int.from_bytes(parts[5][at:at + 8], "little")
        n = draw(st.sampled_from([true, true - 1, true + 1, 0, -1, -2**63, 2**40, 2**62,
                                  2**63 - 1]))
        new[5] = parts[5][:at] + n.to_bytes(8, "little", signed=True) + parts[5][at + 8:]
        valid = True if n == true else None if abs(n - true) == 1 else False
    elif kind == "keys":
        new[4] = pickle.dumps(draw(st.sampled_from(
            [keys[:1], keys + keys[:1], [*keys, "extra"], tuple(keys), [0, 1], "01"])))
    elif kind == "magic":
        magic = pickle.loads(parts[0])
        new[0], fragment = pickle.dumps(draw(st.integers().filter(lambda n: n != magic))), "magic"
    elif kind == "system":
        new[2] = pickle.dumps(draw(st.sampled_from(
            [{"little_endian": False}, [("little_endian", True)], None])))
        fragment = "little-endian"
    blob = b"".join(new)
    if kind == "truncate":
        blob = truncated(draw, blob)
    elif kind == "flip":  # a flip in float data leaves a valid file
        blob, valid = flipped(draw, blob), None
    elif kind == "random":
        blob = draw(st.binary(max_size=4096))
    return kind, blob, valid, fragment


def test_legacy_pth_family(legacy_pth, tmp_path_factory):
    """torch.save's legacy format: any of its five pickles hostile, the tensors pickle lying
    about views or persistent ids, storage counts lying, the storage keys malformed, another
    magic number or system info; truncation, bit flips, random bytes."""
    (parts, keys), folder, cases = legacy_pth, tmp_path_factory.mktemp("legacy"), {}
    seen = fuzz_each(LEGACY_KINDS, lambda kind: legacy_cases(kind, parts, keys, folder / MARKER),
                     5, storing(folder, ".pth", cases))
    read_in_child(cases)
    report("legacy .pth", seen)


# ----------------------------------------------------------------------------- caffemodel
@pytest.fixture(scope="module")
def conv1():
    rng = np.random.default_rng(0)
    w, b = weights.expected_shapes("caffe")["conv1"]
    return rng.normal(size=w).astype(np.float32), rng.normal(size=b).astype(np.float32)


CAFFE_KINDS = ("dims", "transpose", "double", "both", "nan", "duplicate", "blobs", "stranger",
               "truncate", "flip", "splice", "random")


@st.composite
def caffe_cases(draw, kind: str, conv1: tuple) -> tuple:
    """(kind, a caffemodel of conv1 mutated so, valid, what the error says), in either form.
    conv1 alone is never a whole AlexNet: a file whose conv1 is intact fails for lack of conv2."""
    (w, b), legacy = conv1, draw(st.booleans())

    def blob(a: np.ndarray, **kw) -> bytes:
        return caffe_wire.blob(a, legacy, **kw)

    def net(*layers: tuple[str, list[bytes]]) -> bytes:
        return caffe_wire.delimited(1, b"n") + b"".join(
            caffe_wire.encoded_layer(name, blobs, "Convolution", legacy) for name, blobs in layers)

    conv, fragment = [blob(w), blob(b)], ""
    if kind == "dims":  # any declared shape: negative and huge ones too
        bound = 2**31 if legacy else 2**63
        dims = draw(st.lists(st.integers(-bound, bound - 1), min_size=1, max_size=4))
        data = net(("conv1", [blob(w, dims=dims), conv[1]]))
    elif kind == "transpose":  # the same values declared in another axis order
        order = draw(st.permutations(range(4)))
        data = net(("conv1", [blob(w, dims=[w.shape[i] for i in order]), conv[1]]))
        fragment = "no layer 'conv2'" if order == list(range(4)) else ""
    elif kind == "double":  # valid: Caffe may store values as doubles
        data, fragment = net(("conv1", [blob(w, double=True), conv[1]])), "no layer 'conv2'"
    elif kind == "both":
        both = blob(w) + caffe_wire.delimited(8, w.astype("<f8").tobytes())
        data, fragment = net(("conv1", [both, conv[1]])), "both float and double"
    elif kind == "nan":
        bad = [w.copy(), b.copy()]
        leaf = draw(st.integers(0, 1))
        bad[leaf].flat[draw(st.integers(0, bad[leaf].size - 1))] = draw(st.sampled_from(
            [np.nan, np.inf, -np.inf]))
        data, fragment = net(("conv1", [blob(bad[0]), blob(bad[1])])), "NaN or infinite"
    elif kind == "duplicate":  # the last one won
        data, fragment = net(("conv1", conv), ("conv1", conv)), "two layers named 'conv1'"
    elif kind == "blobs":
        data = net(("conv1", draw(st.sampled_from([conv[:1], conv + conv[:1]]))))
        fragment = "expected two"
    elif kind == "stranger":  # weights in a layer AlexNet does not have
        name = draw(st.text(max_size=12).filter(lambda s: s not in LAYERS))
        data, fragment = net(("conv1", conv), (name, conv)), "holds weights"
    elif kind == "truncate":
        data = truncated(draw, net(("conv1", conv)))
    elif kind == "flip":
        data = flipped(draw, net(("conv1", conv)))
    elif kind == "splice":  # a length that lies, or bytes where none belong
        intact = net(("conv1", conv))
        at = draw(st.integers(0, len(intact)))
        data = intact[:at] + draw(st.binary(min_size=1, max_size=16)) + intact[at:]
    else:
        data = draw(st.binary(max_size=4096))
    return kind, data, False, fragment


def test_caffemodel_family(conv1, tmp_path_factory):
    """Blobs with lying, negative or transposed dims, double or both kinds of values, NaN/Inf;
    duplicate layers, wrong blob counts, strangers; truncation, bit flips, splices, random
    bytes."""
    folder = tmp_path_factory.mktemp("caffe")
    path = folder / "alexnet.caffemodel"

    def check(case: tuple) -> None:
        _, data, valid, fragment = case
        path.write_bytes(data)
        read(weights.convert_caffemodel, path, valid, fragment)
        only(folder, path)

    report("caffemodel", fuzz_each(CAFFE_KINDS, lambda kind: caffe_cases(kind, conv1), 5, check))


# ----------------------------------------------------------------------------- npz
def flax_shapes(variant: str, num_classes: int, pool5: int) -> dict[str, tuple]:
    """'layer/leaf' -> shape in the Flax layout (HWIO, (in, out))."""
    out = {}
    for name, (w, b) in weights.expected_shapes(variant, num_classes, pool5).items():
        out[f"{name}/kernel"] = (*w[2:], w[1], w[0]) if len(w) == 4 else (w[1], w[0])
        out[f"{name}/bias"] = b
    return out


def params_arrays(variant: str, num_classes: int, pool5: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s, np.float32).astype(np.float16)
            for k, s in flax_shapes(variant, num_classes, pool5).items()}


@pytest.fixture(scope="module")
def npz_arrays():
    """A valid params file's arrays: Caffe's, with a 2-class fc8 and an fc6 taking 1x1 pool5
    maps (a net trained from scratch at 67 pixels), float16: 40 MB instead of 244."""
    return params_arrays("caffe", 2, 1)


@pytest.fixture(scope="module")
def npz_members(npz_arrays):
    return {f"{k}.npy": npy(a) for k, a in npz_arrays.items()}


def square_fc6(shape: tuple) -> bool:
    rows = shape[0] // 256 if len(shape) == 2 and shape[1] == 4096 else 0
    return rows > 0 and shape[0] % 256 == 0 and math.isqrt(rows) ** 2 == rows


NPZ_KINDS = ("shape", "fc6 rows", "transpose", "dtype", "nan", "fortran", "missing", "extra",
             "misspelt", "object", "header lie", "npy", "duplicate", "compressed", "truncate",
             "flip", "random")
SMALL_LEAVES = ("conv1/kernel", "conv1/bias", "conv3/bias", "conv5/kernel", "fc6/bias",
                "fc8/kernel", "fc8/bias")


@st.composite
def npz_cases(draw, kind: str, arrays: dict[str, np.ndarray], members: dict[str, bytes],
              marker: Path) -> tuple:
    """(kind, a params file mutated so, valid, what the error says, the arrays it changed)."""
    key = draw(st.sampled_from(SMALL_LEAVES))
    changed, new, valid, fragment = {}, dict(members), False, ""
    if kind == "shape":  # a dimension off by one, added or dropped
        shape = list(arrays[key].shape)
        at, change = draw(st.integers(0, len(shape))), draw(st.sampled_from(["-1", "+1", "add",
                                                                             "drop"]))
        if change == "add":
            shape.insert(at, draw(st.integers(1, 3)))
        elif change == "drop":
            del shape[at % len(shape)]
        else:
            shape[at % len(shape)] += 1 if change == "+1" else -1
        changed[key], fragment = np.zeros(shape, np.float16), "shape"
    elif kind == "fc6 rows":  # 256 x side^2 rows: pool5 maps of another size, valid
        rows = draw(st.sampled_from([256, 1024, 2304, 255, 257, 512, 0]))
        changed["fc6/kernel"], valid = np.zeros((rows, 4096), np.float16), square_fc6((rows,
                                                                                       4096))
    elif kind == "transpose":  # valid only where the axes' sizes coincide
        key = draw(st.sampled_from(["conv1/kernel", "conv4/kernel", "fc6/kernel", "fc8/kernel"]))
        changed[key] = arrays[key].transpose(draw(st.permutations(range(arrays[key].ndim))))
        valid = changed[key].shape == arrays[key].shape
    elif kind == "dtype":  # float16/32/64 are valid; nothing else is
        dtype = draw(st.sampled_from(["float32", "float64", "int8", "uint8", "int64", "bool",
                                      "complex64", "U3", "longdouble", ">f4", "V2"]))
        changed[key] = arrays[key].view(dtype) if dtype == "V2" else arrays[key].astype(dtype)
        valid, fragment = dtype in ("float32", "float64"), "expected float16"
    elif kind == "nan":
        changed[key] = arrays[key].copy()
        changed[key].flat[draw(st.integers(0, arrays[key].size - 1))] = draw(st.sampled_from(
            [np.nan, np.inf, -np.inf]))
        fragment = "NaN or infinite"
    elif kind == "fortran":  # valid: the same values in column-major order
        changed[key], valid = np.asfortranarray(arrays[key]), True
    elif kind == "missing":
        del new[draw(st.sampled_from(sorted(members)))]
        fragment = "missing"
    elif kind in ("extra", "misspelt"):
        layer, _ = key.split("/")
        name = draw(st.sampled_from(["conv1/weight", "fc9/kernel", "conv1/kernel/x", "x",
                                     "conv1", "kernel"] if kind == "extra" else
                                    [f"{layer}/kernal", f"{layer}/Kernel", f"{layer}/bias ",
                                     f"{layer}/weight"]))
        new[f"{name}.npy"] = new.pop(f"{key}.npy") if kind == "misspelt" else new[f"{key}.npy"]
        fragment = "unexpected entries"
    elif kind == "object":  # np.load(allow_pickle=True) would run the pickle inside
        new[f"{key}.npy"] = npy(np.array([hostile(marker, draw(st.integers(0, 3)))]), True)
        fragment = "is object"
    elif kind == "header lie":  # the .npy header claims another shape for the same data
        shape = draw(st.sampled_from([(2**40,), (2**31, 2**31), (0,), arrays[key].shape[::-1],
                                      arrays[key].shape]))
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f2", "fortran_order": False,
                                                    "shape": shape})
        new[f"{key}.npy"] = head.getvalue() + arrays[key].tobytes()
        valid = shape == arrays[key].shape
    new.update({f"{k}.npy": npy(a) for k, a in changed.items()})
    data = rezip(new)
    if kind == "npy":
        data, fragment = new[f"{key}.npy"], "not a readable"
    elif kind == "duplicate":
        data, fragment = with_duplicate(new, f"{key}.npy"), "more than once"
    elif kind == "compressed":
        data, fragment = rezip(new, zipfile.ZIP_DEFLATED), "compressed"
    elif kind == "truncate":
        data = truncated(draw, data)
    elif kind == "flip":  # a flip in float data can leave a valid file
        data, valid = flipped(draw, data), None
    elif kind == "random":
        data = draw(st.binary(max_size=4096))
    return kind, data, valid, fragment, changed


def test_npz_family(npz_arrays, npz_members, tmp_path_factory):
    """Params files with wrong or transposed shapes, other dtypes, NaN/Inf, missing, extra or
    misspelt leaves, object arrays, lying headers, doubled members, compression, a bare .npy,
    truncation, bit flips, random bytes. Fortran order, float32/64 and an fc6 for square pool5
    maps of another size are valid."""
    folder = tmp_path_factory.mktemp("npz")
    path = folder / "params.npz"

    def check(case: tuple) -> None:
        _, data, valid, fragment, changed = case
        path.write_bytes(data)
        params = read(weights.load, path, valid, fragment)
        if params is not None:
            assert [list(params[layer]) for layer in params] == [["kernel", "bias"]] * 8
            for k, a in changed.items():
                np.testing.assert_array_equal(params[k.split("/")[0]][k.split("/")[1]], a)
        only(folder, path)

    report("npz", fuzz_each(NPZ_KINDS, lambda kind: npz_cases(kind, npz_arrays, npz_members,
                                                              folder / MARKER), 3, check))


# ----------------------------------------------------------------------------- the findings
def test_1_hostile_pickles_run_no_code(legacy_pth, zip_pth, tmp_path):
    """A legacy file's header pickles went through plain pickle.load: one whose first pickle
    calls os.system ran it. Now no pickle of either format may name a global beyond tensors."""
    (parts, _), (members, prefix) = legacy_pth, zip_pth
    marker = tmp_path / MARKER
    paths = []
    for at in range(5):
        paths.append(tmp_path / f"legacy-{at}.pth")
        paths[-1].write_bytes(b"".join([*parts[:at], hostile_pickle(marker, at, 2, False),
                                        *parts[at + 1:]]))
    paths.append(tmp_path / "zip.pth")
    paths[-1].write_bytes(rezip({**members, f"{prefix}data.pkl": hostile_pickle(marker, 1, 4,
                                                                                True)}))
    with open(paths[0], "rb") as f:  # the payload is live: a plain unpickler runs it
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    for path in paths:
        read(weights.read_torch_state_dict, path, False, "refusing to load posix.system"
             if path == paths[0] else "refusing to load")
        read(weights.convert_torchvision, path, False, "refusing to load")
    only(tmp_path, *paths)


def test_2_views_and_counts_beyond_the_bytes_are_refused(zip_pth, legacy_pth, tmp_path):
    """A stride of 1e9 on a 4-value storage killed the process; an offset past the end or a
    negative stride read memory outside the storage; a legacy storage claiming 2**40 or 2**62
    values raised MemoryError or OverflowError. And (found by fuzzing) a pickle putting its
    memo at index 2**31 had CPython's C unpickler allocate and clear 32 GB. Read in a child: a
    regression would crash."""
    (members, prefix), (parts, _) = zip_pth, legacy_pth
    views = {"stride-1e9": (0, (4,), (10**9,)), "offset-past-the-end": (100, (4,), (1,)),
             "negative-stride": (3, (4,), (-1,)), "scalar-at-the-end": (4, (), ()),
             "inside": (0, (2, 2), (2, 1))}
    cases = {}
    for name, view in views.items():
        path = tmp_path / f"{name}.pth"
        path.write_bytes(rezip({f"{prefix}data.pkl": tensor_pickle(
            {"w": (storage_pid("0"), *view)}, legacy=False), f"{prefix}data/0": bytes(16)}))
        cases[path] = (name, name == "inside", "no layer 'conv1'" if name == "inside" else
                       "malformed tensor" if name == "negative-stride" else "outside")
    path = tmp_path / "storage-of-15-bytes.pth"
    path.write_bytes(rezip({**members, f"{prefix}data/1": bytes(15)}))
    cases[path] = ("15 bytes", False, "not a whole number of float32 values")
    path = tmp_path / "memo-at-2**31.pth"
    path.write_bytes(rezip({**members, f"{prefix}data.pkl": b"\x80\x02K\x01r\xff\xff\xff\x7f."}))
    cases[path] = ("memo", False, "not a state_dict")
    for numel in (2**40, 2**62):
        path = tmp_path / f"legacy-claims-{numel}.pth"
        path.write_bytes(b"".join(parts[:5]) + numel.to_bytes(8, "little") + parts[5][8:])
        cases[path] = ("count", False, "truncated or corrupt")
    read_in_child(cases)


_CLI = """
import errno, os, sys
import numpy as np
from ftjax import convert, weights
from ftjax.models.alexnet import LAYERS

weights.CONVERTERS["caffe"] = lambda src: {  # a converted file, without converting one
    layer: {"kernel": np.ones((2, 2), np.float32), "bias": np.ones(2, np.float32)}
    for layer in LAYERS}
{failure}
sys.argv[0] = "ftjax.convert"
convert.run()
"""
_FAILURES = {
    "directory": "",
    "read-only": '''
real_open = os.open
def read_only(path, flags, *args, **kwargs):  # a read-only file system, even for root
    if str(path).startswith(os.environ["DST_DIR"]) and flags & (os.O_WRONLY | os.O_CREAT):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    return real_open(path, flags, *args, **kwargs)
os.open = read_only
''',
    "full-disk": '''
def full(f, **arrays):  # the disk fills up part way through the file
    f.write(bytes(4096))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
np.savez = full
'''}


def test_3_convert_failures_end_in_one_line(conv1, tmp_path):
    """A caffemodel blob of negative dims, a --dst that is a directory, on a read-only file
    system or on a full disk: one line ``error: ...`` naming the file, status 1, nothing left."""
    w, b = conv1
    src = tmp_path / "negative.caffemodel"
    src.write_bytes(caffe_wire.delimited(1, b"n") + caffe_wire.encoded_layer("conv1", [
        caffe_wire.blob(w, False, dims=(-96, -3, 11, 11)), caffe_wire.blob(b, False)],
        "Convolution", False))
    runs = {}
    for name in ["negative-dims", *_FAILURES]:
        folder = tmp_path / name
        folder.mkdir()
        dst = folder / ("out" if name == "directory" else "out.npz")
        if name == "directory":
            dst.mkdir()
        code = _CLI.replace("{failure}", _FAILURES.get(name, ""))
        command = (["-m", "ftjax.convert"] if name == "negative-dims" else ["-c", code])
        runs[name] = (folder, dst, src if name == "negative-dims" else dst, subprocess.Popen(
            [sys.executable, *command, "--arch=caffe", f"--src={src}", f"--dst={dst}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu", "DST_DIR": str(folder)}))
    for name, (folder, dst, named, proc) in runs.items():
        _, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, (name, err)
        assert lines[0].startswith(f"error: {named}"), (name, err)
        only(folder, *([dst] if name == "directory" else []))
        assert name != "directory" or not any(dst.iterdir())


@pytest.fixture(scope="module")
def caffe_layers():
    """The whole Caffe AlexNet as encoded layers by name (zeros: only shapes matter here)."""
    return {name: caffe_wire.layer(name, [np.zeros(w, np.float32), np.zeros(b, np.float32)],
                                   legacy=False)
            for name, (w, b) in weights.expected_shapes("caffe").items()}


@pytest.mark.parametrize("change", ["none", "fc6 declared transposed", "conv1 twice"])
def test_4_a_transposed_fc6_or_a_second_conv1_is_refused(caffe_layers, change, tmp_path):
    """An fc6 declared (9216, 4096), as many values as (4096, 9216), was silently reshaped; of
    two conv1 layers the last won. The same file unchanged converts."""
    layers = dict(caffe_layers)
    if change == "fc6 declared transposed":
        layers["fc6"] = caffe_wire.encoded_layer("fc6", [
            caffe_wire.blob(np.zeros((4096, 9216)), False, dims=(9216, 4096)),
            caffe_wire.blob(np.zeros(4096), False)], "InnerProduct", False)
    elif change == "conv1 twice":
        layers["conv1 again"] = caffe_wire.layer("conv1", [np.ones((96, 3, 11, 11)),
                                                           np.ones(96)], legacy=False)
    path = tmp_path / "alexnet.caffemodel"
    path.write_bytes(caffe_wire.delimited(1, b"AlexNet") + b"".join(layers.values()))
    fragment = {"fc6 declared transposed": "layer 'fc6' has weights of shape (9216, 4096)",
                "conv1 twice": "two layers named 'conv1'"}.get(change, "")
    params = read(weights.convert_caffemodel, path, change == "none", fragment)
    assert params is None or params["fc6"]["kernel"].shape == (9216, 4096)


@pytest.mark.parametrize("change, fmt", [
    (change, fmt) for change in ("all NaN", "uint8", "float64 beyond float32")
    for fmt in ("caffemodel", "pth", "legacy pth") if (change, fmt) != ("uint8", "caffemodel")])
def test_4_wrong_values_are_refused_in_every_format(conv1, change, fmt, tmp_path):
    """All-NaN weights and a uint8 .pth converted with exit 0. conv1 is checked first, so conv1
    alone shows it (a caffemodel holds only float or double values: no uint8 there)."""
    w, b = (np.zeros((64, 3, 11, 11)), np.zeros(64)) if fmt != "caffemodel" else conv1
    w = {"all NaN": np.full(w.shape, np.nan, np.float32), "uint8": w.astype(np.uint8),
         "float64 beyond float32": np.full(w.shape, 1e300)}[change]
    path = tmp_path / f"w.{fmt.split()[-1]}"
    if fmt == "caffemodel":
        path.write_bytes(caffe_wire.delimited(1, b"n") + caffe_wire.encoded_layer("conv1", [
            caffe_wire.blob(w, False, double=w.dtype == np.float64), caffe_wire.blob(b, False)],
            "Convolution", False))
        convert = weights.convert_caffemodel
    else:
        torch.save({"features.0.weight": torch.from_numpy(w),
                    "features.0.bias": torch.from_numpy(b.astype(np.float32))}, path,
                   _use_new_zipfile_serialization=fmt == "pth")
        convert = weights.convert_torchvision
    read(convert, path, False, "is uint8" if change == "uint8" else "NaN or infinite")


@pytest.mark.parametrize("change", [
    "wrong shape", "missing leaf", "misspelt leaf", "extra layer", "int8", "bool", "complex",
    "string", "NaN", "Inf", "fc6 transposed", "one layer of the other variant"])
def test_4_load_checks_what_it_reads(npz_arrays, change, tmp_path):
    """weights.load checked layer names only: wrong shapes, missing or misspelt leaves, other
    dtypes and NaN/Inf passed."""
    arrays = dict(npz_arrays)
    if change == "wrong shape":
        arrays["conv2/kernel"] = np.zeros((5, 5, 48, 255), np.float16)
    elif change == "missing leaf":
        del arrays["fc7/bias"]
    elif change == "misspelt leaf":
        arrays["fc7/bais"] = arrays.pop("fc7/bias")
    elif change == "extra layer":
        arrays["fc9/kernel"] = arrays["fc8/kernel"]
    elif change in ("int8", "bool", "complex", "string"):
        arrays["conv1/bias"] = arrays["conv1/bias"].astype(
            {"int8": np.int8, "bool": np.bool_, "complex": np.complex64, "string": "U8"}[change])
    elif change in ("NaN", "Inf"):
        arrays["fc7/kernel"] = arrays["fc7/kernel"].copy()
        arrays["fc7/kernel"][123, 456] = np.nan if change == "NaN" else np.inf
    elif change == "fc6 transposed":
        arrays["fc6/kernel"] = np.zeros((4096, 9216), np.float16)
    else:
        arrays["conv2/kernel"] = np.zeros(flax_shapes("torchvision", 2, 1)["conv2/kernel"],
                                          np.float16)
    path = tmp_path / "p.npz"
    path.write_bytes(rezip({f"{k}.npy": npy(a) for k, a in arrays.items()}))
    read(weights.load, path, False, {
        "wrong shape": "conv2/kernel has shape (5, 5, 48, 255); the 'caffe' variant needs "
                       "(5, 5, 48, 256)", "missing leaf": "missing layers or leaves ['fc7/bias']",
        "misspelt leaf": "'fc7/bais.npy'", "extra layer": "'fc9/kernel.npy'",
        "int8": "is int8", "bool": "is bool", "complex": "is complex64", "string": "is <U8",
        "NaN": "fc7/kernel has 1 NaN", "Inf": "fc7/kernel has 1 NaN or infinite",
        "fc6 transposed": "fc6/kernel has shape (4096, 9216)",
        "one layer of the other variant": "conv2/kernel has shape (5, 5, 64, 192); the 'caffe'",
    }[change])


@pytest.mark.parametrize("variant, num_classes, pool5", [
    ("caffe", 3, 1), ("torchvision", 2, 1), ("torchvision", 1000, 2)])
def test_4_load_accepts_each_variant_and_a_fine_tuned_head(variant, num_classes, pool5,
                                                           tmp_path):
    """A file matching one variant exactly loads, whatever fc8's width and (a net trained from
    scratch at another input size) fc6's pool5 map size."""
    arrays = params_arrays(variant, num_classes, pool5)
    path = weights.save({layer: {leaf: arrays[f"{layer}/{leaf}"] for leaf in ("kernel", "bias")}
                         for layer in LAYERS}, tmp_path / "p.npz")
    params = read(weights.load, path, True)
    assert params["fc8"]["bias"].shape == (num_classes,)
    np.testing.assert_array_equal(params["fc6"]["kernel"], arrays["fc6/kernel"])
    only(tmp_path, path)


_KILLED = """
import os, signal, sys
import numpy as np
from ftjax import weights

def dies(f, **arrays):  # killed part way through writing the file
    f.write(bytes(4096))
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.savez = dies
weights.save({"conv1": {"kernel": np.ones(2), "bias": np.ones(2)}}, sys.argv[1])
"""


def test_5_the_next_save_removes_what_a_killed_one_left(tmp_path):
    """A convert killed while saving left a .part that no later run removed."""
    dst = tmp_path / "out.npz"
    r = subprocess.run([sys.executable, "-c", _KILLED, str(dst)], cwd=ROOT, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert r.returncode == -9
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(f".out.npz.{socket.gethostname()}.") and left.suffix == ".part"
    weights.save({"conv1": {"kernel": np.ones(2), "bias": np.ones(2)}}, dst)
    only(tmp_path, dst)


def test_5_save_spares_temporaries_of_live_writers_and_other_hosts(tmp_path):
    """Only this host's temporaries of the same file whose writer is gone are stale."""
    done = subprocess.Popen(["true"])
    done.wait()
    host = socket.gethostname()
    kept = [tmp_path / f".out.npz.{host}.{os.getpid()}.abc.part",  # a live writer: this one
            tmp_path / f".out.npz.elsewhere.{done.pid}.abc.part",  # another host's
            tmp_path / f".other.npz.{host}.{done.pid}.abc.part"]  # another file's
    stale = tmp_path / f".out.npz.{host}.{done.pid}.abc.part"
    for p in [*kept, stale]:
        p.write_bytes(b"half")
    dst = weights.save({"conv1": {"kernel": np.ones(2), "bias": np.ones(2)}},
                       tmp_path / "out.npz")
    only(tmp_path, dst, *kept)


def test_6_errors_are_value_errors_naming_the_file(tmp_path):
    """Every refusal above is checked to start with the file's path; a WeightsError is also a
    ValueError, which callers (the trainer's CLI) already report."""
    path = tmp_path / "empty.npz"
    path.write_bytes(rezip({}))
    with pytest.raises(ValueError, match="empty.npz: missing layers or leaves") as e:
        weights.load(path)
    assert isinstance(e.value, weights.WeightsError)
