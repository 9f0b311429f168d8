"""Fuzz tests of the PE readers: CAD-PE NRRD files, FUMPE DICOM series and FUMPE .mat masks,
each mutated in memory from small valid files (written once per module), plus one named
regression test per finding of the "Hostile and broken input" review.

Every read runs in a child process with a timeout, so a hang fails its example instead of
stalling the suite, and a crash kills the child instead of the test run. Each read must:
  - raise `PEDataError` with a one-line message that starts with a path in the case folder, or
    return a sane result: finite float32 HU, three finite positive spacings, int32 labels 0..n
    with 1..n all present;
  - be refused when the mutation leaves no valid file (expect="refuse"), be accepted when it
    leaves a genuinely valid one (expect="accept", each such mutation says why), and give the
    unmutated result when it cannot change the data (same=True);
  - answer within READ_TIMEOUT_S and write nothing (the case folder is unchanged).

Inputs per family (distinct mutated cases actually read; each family asserts >= MIN_INPUTS):
  nrrd   400 examples drawn, 380 distinct (3 encodings/types x image or mask x 19 mutations)
  dicom  250 examples drawn, 194 distinct (4 slices x 12 mutations, many per tag and value)
  mat    250 examples drawn, 232 distinct (plain or compressed x 10 mutations)
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import math
import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import scipy.io
import scipy.sparse
from fuzz_support import damaged, flips
from hypothesis import strategies as st
from reading_child import MIN_INPUTS, Case, ReadingChild, child_fixture, fuzz, read_case
from test_pe_readers import NORMAL, _volume_xyz, _write_cadpe, _write_fumpe, _write_slice

from ftjax.apps.pe.ct import CTDataError, CTScan
from ftjax.apps.pe.readers import FORMAT_VERSION, PEDataError, load_case, read_fumpe_mask

# ------------------------------------------------------------------------ the reading child

_READERS = {  # family -> how the child reads a case folder (its base: "family" or "family:...")
    "nrrd": lambda folder: load_case("cadpe", folder, "1"),
    "dicom": lambda folder: load_case("fumpe", folder, "P"),
    "mat": lambda folder: read_fumpe_mask(folder / "GroundTruth" / "P.mat"),
}


def _problems(result: Any) -> list[str]:
    """What is wrong with an accepted result: a scan or a FUMPE mask (empty when it is sane)."""
    labels = result.clots if isinstance(result, CTScan) else result
    checks = {"3-D int32 labels >= 0": labels.ndim == 3 and labels.dtype == np.int32
              and labels.min() >= 0}
    if isinstance(result, CTScan):
        hu, present = result.hu, set(np.unique(labels).tolist()) - {0}
        checks |= {
            "finite float32 HU": hu.dtype == np.float32 and np.isfinite(hu).all(),
            "labels of the volume's shape": labels.shape == hu.shape,
            "labels 1..n": present == set(range(1, len(present) + 1)),
            "positive finite spacing": len(result.spacing) == 3
            and all(np.isfinite(s) and s > 0 for s in result.spacing),
        }
    return [name for name, ok in checks.items() if not ok]


def _summary(result: Any) -> dict[str, Any]:
    """An accepted result as the parent checks it: problems, a digest and the spacing."""
    arrays = (result.hu, result.clots) if isinstance(result, CTScan) else (result,)
    spacing = result.spacing if isinstance(result, CTScan) else None
    digest = hashlib.sha256(repr((spacing, [a.shape for a in arrays])).encode())
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return {"problems": _problems(result), "digest": digest.hexdigest(), "spacing": spacing}


def _read_summary(base: str, folder: Path) -> dict[str, Any]:
    """What the child does: read a case folder of `base` with its family's reader."""
    return _summary(_READERS[base.partition(":")[0]](folder))


child = child_fixture(_read_summary, PEDataError)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------------------ the contract


@dataclass(frozen=True)
class PECase(Case):
    """A case whose `kind` is the unmutated case it came from (a key of _BASES, for `same`)."""

    same: bool = False  # if accepted, the result equals the unmutated one
    spacing: tuple[float, float, float] | None = None  # if accepted, the scan's spacing

    def __repr__(self) -> str:  # hypothesis prints failing examples: the mutation, not bytes
        return f"Case({self.kind}: {self.what}; expect={self.expect}, same={self.same})"


def _accepted(child: ReadingChild, workdir: Path) -> Callable[[PECase, dict[str, Any]], None]:
    """What an accepted read must be: sane, the unmutated result when `same`, and the case's
    spacing when it has one."""

    def check(case: PECase, detail: dict[str, Any]) -> None:
        assert not detail["problems"], f"{case!r}: accepted with {detail['problems']}"
        if case.same:
            assert detail["digest"] == _unmutated_digest(child, workdir, case.kind), (
                f"{case!r}: accepted with a result that differs from the unmutated file's"
            )
        if case.spacing is not None:
            np.testing.assert_allclose(detail["spacing"], case.spacing, rtol=1e-6,
                                       err_msg=repr(case))

    return check


def _read_case(child: ReadingChild, workdir: Path, case: PECase) -> tuple[str, Any]:
    """`read_case` in the work folder, an accepted read held to `_accepted`."""
    return read_case(child, workdir / "case", case, _accepted(child, workdir))


def _fuzz(child: ReadingChild, workdir: Path, cases: st.SearchStrategy[PECase],
          examples: int) -> int:
    """`fuzz` in the work folder, an accepted read held to `_accepted`."""
    return fuzz(child, workdir / "case", cases, examples, _accepted(child, workdir))


_DIGESTS: dict[str, str] = {}  # base -> digest of its (unmutated) result


def _unmutated_digest(child: ReadingChild, workdir: Path, base: str) -> str:
    if base not in _DIGESTS:
        unmutated = PECase(base, "unmutated", _BASES[base](), "accept")
        _DIGESTS[base] = _read_case(child, workdir, unmutated)[1]["digest"]
    return _DIGESTS[base]


# ------------------------------------------------------------------------------------ NRRD

NRRD_VARIANTS = {  # name -> (encoding, image dtype, geometry header)
    "raw-int16": ("raw", np.int16, {"space": "left-posterior-superior",
                                    "space directions": np.diag([0.7, 0.8, 2.5])}),
    "gzip-int16": ("gzip", np.int16, {"space": "left-posterior-superior",
                                      "space directions": np.diag([0.7, 0.8, 2.5])}),
    "raw-float32-spacings": ("raw", np.float32, {"spacings": [0.7, 0.8, 2.5]}),
}
IMAGE, MASK = "images/1.nrrd", "rs/1RefStd.nrrd"
_TYPE_SIZES = {"short": 2, "ushort": 2, "int16": 2, "signed short int": 2, "uchar": 1,
               "int8": 1, "int": 4, "float": 4, "uint32": 4, "double": 8, "longlong": 8}
_REQUIRED = ("type", "dimension", "sizes", "encoding")
_LIES = ("sizes", "line skip", "byte skip", "type", "encoding", "dimension", "endian",
         "space directions", "spacings", "data file", "kinds")  # header fields set to lies


@functools.cache
def _nrrd_base(variant: str) -> dict[str, bytes]:
    """A valid CAD-PE case written by pynrrd: image (x, y, z) = (6, 5, 4) and a 2-clot mask."""
    encoding, dtype, geometry = NRRD_VARIANTS[variant]
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[1:3, 1, 0], labels[4, 3, 2:4] = 7, 3
    with tempfile.TemporaryDirectory() as tmp:
        _write_cadpe(Path(tmp), "1", _volume_xyz().astype(dtype), labels,
                     header={**geometry, "encoding": encoding})
        return {name: (Path(tmp) / name).read_bytes() for name in (IMAGE, MASK)}


def _header_lines(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.partition(b"\n\n")
    return head.split(b"\n"), body


def _set_field(data: bytes, field: str, value: bytes | None) -> bytes:
    """The NRRD file with `field` removed and, unless value is None, set to `value`."""
    lines, body = _header_lines(data)
    kept = [line for line in lines if not line.startswith(field.encode() + b":")]
    return b"\n".join(kept + ([] if value is None else [field.encode() + b": " + value])
                      + [b"", body])


@st.composite
def _geometry(draw: st.DrawFn, vectors: bool) -> np.ndarray:
    """Three axis vectors (or spacings), random but sound, then perhaps given one defect."""
    n = 9 if vectors else 3
    values = np.array(draw(st.lists(st.floats(0.1, 3.0), min_size=n, max_size=n)))
    if vectors:  # direction vectors point anywhere
        values *= draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n))
    values = values.reshape((3, 3) if vectors else (3,))
    defect = draw(st.sampled_from(["none", "NaN", "Inf", "zero", "negative", "huge", "count"]))
    where = draw(st.integers(0, 2))
    if defect == "count":
        return values[: where + 1] if where < 2 else np.concatenate([values, values[:1]])
    if vectors and defect in ("zero", "negative"):  # a zero vector; a reversed one is sound
        values[where] *= 0.0 if defect == "zero" else -1.0
    elif defect != "none":
        values.reshape(-1)[where] = {"NaN": np.nan, "Inf": np.inf, "zero": 0.0,
                                     "negative": -1.0, "huge": 1e200}[defect]
    return values


@st.composite
def _nrrd_lie(draw: st.DrawFn, variant: str, name: str, field: str) -> tuple[bytes, dict]:
    """A value for a header field, and what the reader must then do (as Case keywords)."""
    encoding, dtype, geometry = NRRD_VARIANTS[variant]
    itemsize = np.dtype(dtype).itemsize if name == IMAGE else 1
    refuse, accept = {"expect": "refuse"}, {"expect": "accept", "same": True}
    if field == "sizes":
        sizes = draw(st.lists(st.sampled_from([-1, 0, 1, 4, 5, 6, 2**31, 10**12]),
                              min_size=1, max_size=4))
        return " ".join(map(str, sizes)).encode(), accept if sizes == [6, 5, 4] else refuse
    if field in ("line skip", "byte skip"):
        skip = draw(st.sampled_from([-2, -1, 1, 3, 10**9, 2**62]) | st.integers(0, 40))
        # A byte skip of -1 means "the data are the last bytes", which they are: still valid.
        valid = skip == 0 or (field == "byte skip" and skip == -1)
        return str(skip).encode(), accept if valid else refuse
    if field == "type":
        kind = draw(st.sampled_from([*_TYPE_SIZES, "block", "float16", "garbage"]))
        # Same-size types reinterpret the bits: a valid file with other values (or NaN: refused).
        same_size = _TYPE_SIZES.get(kind) == itemsize
        return kind.encode(), {"expect": "either"} if same_size else refuse
    if field == "encoding":
        kind = draw(st.sampled_from(["raw", "gzip", "gz", "bzip2", "ascii", "text", "hex", "zip"]))
        same = kind == encoding or {kind, encoding} == {"gz", "gzip"}
        return kind.encode(), accept if same else refuse
    if field == "dimension":
        dimension = draw(st.integers(-1, 5))
        return str(dimension).encode(), accept if dimension == 3 else refuse
    if field == "endian":
        endian = draw(st.sampled_from(["little", "big", "middle", ""]))
        if itemsize == 1 or endian == "little":  # bytes have no byte order
            return endian.encode(), accept
        return endian.encode(), {"expect": "either"} if endian == "big" else refuse
    if field in ("space directions", "spacings"):
        vectors = field == "space directions"
        rows = draw(_geometry(vectors))
        text = (" ".join("(" + ",".join(map(repr, r.tolist())) + ")" for r in rows) if vectors
                else " ".join(map(repr, rows.tolist())))
        with np.errstate(over="ignore", invalid="ignore"):
            steps = np.linalg.norm(rows, axis=-1) if vectors else rows
        sound = (len(rows) == 3 and np.isfinite(rows).all()
                 and (np.isfinite(steps) & (steps > 0)).all())
        if field not in geometry or not sound:  # both geometry fields, or broken geometry
            return text.encode(), refuse
        # Set in image and mask alike; sound but degenerate (coplanar) directions are refused.
        return text.encode(), {"spacing": tuple(float(s) for s in steps[::-1])}
    if field == "data file":
        return draw(st.sampled_from([b"1.raw", b"/dev/zero", b"LIST"])), refuse
    return draw(st.binary(max_size=12)), {"expect": "either"}


@st.composite
def nrrd_cases(draw: st.DrawFn) -> PECase:
    variant = draw(st.sampled_from(sorted(NRRD_VARIANTS)))
    files = dict(_nrrd_base(variant))
    name = draw(st.sampled_from([IMAGE, MASK]))
    data = files[name]
    lines, body = _header_lines(data)
    body_at = len(data) - len(body)
    encoding, dtype, geometry = NRRD_VARIANTS[variant]
    how = draw(st.sampled_from([*_LIES, "drop", "duplicate", "truncate", "append", "flip body",
                                "flip", "random", "none"]))
    what, rules = how, {"expect": "refuse"}
    if how in _LIES:
        value, rules = draw(_nrrd_lie(variant, name, how))
        data, what = _set_field(data, how, value), f"{how}: {value!r}"
        if how in ("space directions", "spacings"):  # the case's geometry: image and mask
            other = IMAGE if name == MASK else MASK
            files[other] = _set_field(files[other], how, value)
    elif how == "drop":
        field = draw(st.sampled_from([*_REQUIRED, "endian", "space directions", "spacings",
                                      "space", "kinds"]))
        # Every image type is multi-byte (needs its endian); a mask may lack geometry.
        needed = (field in _REQUIRED or (field == "endian" and name == IMAGE)
                  or (field in geometry and field != "space" and name == IMAGE))
        data, what = _set_field(data, field, None), f"drop {field}"
        rules = {"expect": "refuse"} if needed else {"expect": "accept", "same": True}
    elif how == "duplicate":  # pynrrd refuses a field given twice
        line = draw(st.sampled_from([line for line in lines[1:] if not line.startswith(b"#")]))
        data, what = b"\n".join([*lines, line, b"", body]), f"duplicate {line!r}"
    elif how == "truncate":
        what, data = draw(damaged(data, how))
    elif how == "append":  # raw data must fill the file; compressed data must end it
        data += draw(st.binary(min_size=1, max_size=64))
    elif how == "flip body":
        data = draw(flips(data, body_at))
        # Raw integers have no checksum and any bit pattern is a value: still a valid file.
        # Raw floats may become NaN (refused); gzip's CRC must catch a flip or it was harmless.
        rules = ({"expect": "accept"} if encoding == "raw" and (name == MASK or dtype == np.int16)
                 else {"expect": "either", "same": encoding != "raw"})
    elif how == "flip":
        data, rules = draw(flips(data)), {"expect": "either"}
    elif how == "random":
        data = draw(st.sampled_from([b"", b"NRRD0004\n"])) + draw(st.binary(max_size=400))
    else:
        rules = {"expect": "accept", "same": True}
    files[name] = data
    return PECase(f"nrrd:{variant}", f"{name}: {what}", files, **rules)


def test_fuzz_nrrd(child, workdir):
    assert _fuzz(child, workdir, nrrd_cases(), 400) >= MIN_INPUTS


# ----------------------------------------------------------------------------------- DICOM

SLICE_NAMES = [f"CT_scans/P/IM{k:04d}" for k in range(4)]
MAT = "GroundTruth/P.mat"
BINARY_MASK = np.zeros((6, 7, 4), np.uint8)  # (y, x, z): one clot over two slices
BINARY_MASK[1:3, 2, 0:2] = 1


@functools.cache
def _dicom_base() -> dict[str, bytes]:
    """A valid FUMPE case: a 4-slice oblique series of 6 x 7 pixels and its binary mask."""
    with tempfile.TemporaryDirectory() as tmp:
        _write_fumpe(Path(tmp), "P", n=4, shape=(6, 7), mask=BINARY_MASK)
        return {name: (Path(tmp) / name).read_bytes() for name in [*SLICE_NAMES, MAT]}


_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _with_value(data: bytes, keyword: str, value: bytes | None) -> bytes:
    """The DICOM file (explicit VR little endian) with one element's value replaced at byte level
    (values pydicom would refuse to write), or with the element removed (value None)."""
    element = pydicom.dcmread(io.BytesIO(data)).get_item(keyword)
    long_vr = element.VR in _LONG_VRS  # tag, VR, 2 reserved bytes, 4-byte length; else 2-byte
    size, header = (4, 12) if long_vr else (2, 8)
    start, end = element.value_tell, element.value_tell + element.length
    if value is None:
        return data[: start - header] + data[end:]
    value += b" " * (len(value) % 2)
    return data[: start - size] + len(value).to_bytes(size, "little") + value + data[end:]


def _value(data: bytes, keyword: str) -> bytes:
    element = pydicom.dcmread(io.BytesIO(data)).get_item(keyword)
    return data[element.value_tell: element.value_tell + element.length]


_DROPS = {  # keyword -> (expect, same) when one slice lacks it
    **dict.fromkeys(("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                     "PixelData", "InstanceNumber", "SeriesInstanceUID", "Rows", "Columns",
                     "BitsAllocated"), ("refuse", False)),
    # [documented] absent RescaleSlope / RescaleIntercept mean 1 / 0: valid, other HU.
    **dict.fromkeys(("RescaleSlope", "RescaleIntercept"), ("accept", False)),
    "Modality": ("accept", True),  # not used by the reader
    **dict.fromkeys(("PixelRepresentation", "PhotometricInterpretation", "SamplesPerPixel"),
                    ("either", False)),
}
_BAD_VALUES = {  # keyword -> values that break it (wrong count, not numbers, out of range)
    "ImagePositionPatient": [b"1\\2", b"1\\2\\3\\4", b"x\\y\\z", b"inf\\0\\0", b"1e999\\0\\0",
                             b"nan\\1\\2"],
    "ImageOrientationPatient": [b"1\\0\\0\\0\\1", b"0\\0\\0\\0\\0\\0", b"1\\0\\0\\1\\0\\0",
                                b"1\\0\\0\\0\\1\\0\\0", b"a\\b\\c\\d\\e\\f", b"nan\\0\\0\\0\\1\\0"],
    "PixelSpacing": [b"0\\0.6", b"-0.7\\0.6", b"nan\\0.6", b"0.7", b"0.7\\0.6\\0.5", b"ab\\cd"],
    "InstanceNumber": [b"abc", b"2.5", b"1\\2", b"nan"],
    "RescaleSlope": [b"abc", b"0", b"nan", b"1e999", b"1\\2"],
    "RescaleIntercept": [b"abc", b"inf", b"1\\2", b"-1e999"],
    "Rows": [b"\x00\x00", b"\x01\x00", b"\xff\xff"],
    "Columns": [b"\x00\x00", b"\x06\x00", b"\xff\xff"],
}


@st.composite
def dicom_cases(draw: st.DrawFn) -> PECase:
    files = dict(_dicom_base())
    name, other = draw(st.lists(st.sampled_from(SLICE_NAMES), min_size=2, max_size=2,
                                unique=True))
    data = files[name]
    how = draw(st.sampled_from(["drop", "bad value", "garble", "duplicate instance",
                                "other series", "pixel length", "truncate", "random", "flip",
                                "flip pixels", "extra file", "none"]))
    what, rules = how, {"expect": "refuse"}
    if how == "drop":
        keyword = draw(st.sampled_from(sorted(_DROPS)))
        expect, same = _DROPS[keyword]
        data, what, rules = _with_value(data, keyword, None), f"drop {keyword}", {
            "expect": expect, "same": same}
    elif how == "bad value":
        keyword = draw(st.sampled_from(sorted(_BAD_VALUES)))
        value = draw(st.sampled_from(_BAD_VALUES[keyword]))
        data, what = _with_value(data, keyword, value), f"{keyword} = {value!r}"
    elif how == "garble":  # same length, any bytes: may even stay a valid value
        keyword = draw(st.sampled_from([*sorted(_BAD_VALUES), "SeriesInstanceUID"]))
        size = len(_value(data, keyword))
        value = draw(st.binary(min_size=size, max_size=size))
        data, what, rules = _with_value(data, keyword, value), f"{keyword} = {value!r}", {}
    elif how == "duplicate instance":  # the mask's z order would be a guess
        data = _with_value(data, "InstanceNumber", _value(files[other], "InstanceNumber"))
    elif how == "other series":  # a slice of another series interleaved into this one
        data = _with_value(data, "SeriesInstanceUID", b"1.2.826.0.1.3680043.2.1125.1")
    elif how == "pixel length":
        change = 2 * draw(st.integers(-20, 20).filter(bool))  # even: no padding byte to hide it
        pixels = _value(data, "PixelData")
        value = pixels[:change] if change < 0 else pixels + bytes(change)
        data, what = _with_value(data, "PixelData", value), f"pixel data {change:+d} bytes"
    elif how == "truncate":
        what, data = draw(damaged(data, how))
    elif how == "random":
        data = draw(st.binary(max_size=400))
    elif how == "flip":
        data, rules = draw(flips(data)), {}
    elif how == "flip pixels":  # uint16 pixels have no checksum: every pattern is valid
        pixels = _value(data, "PixelData")
        at = data.rindex(pixels)
        data, rules = draw(flips(data, at, at + len(pixels))), {"expect": "accept"}
    elif how == "extra file":
        extra = draw(st.sampled_from(["notes.txt", ".DS_Store", "DICOMDIR"]))
        files[f"CT_scans/P/{extra}"] = draw(st.binary(max_size=64))
        # Hidden files and DICOMDIR are skipped; any other file must be a slice of the series.
        what = f"extra file {extra}"
        rules = {"expect": "refuse"} if extra == "notes.txt" else {"expect": "accept",
                                                                    "same": True}
    else:
        rules = {"expect": "accept", "same": True}
    files[name] = data
    return PECase("dicom", f"{name}: {what}", files, **rules)


def test_fuzz_dicom(child, workdir):
    assert _fuzz(child, workdir, dicom_cases(), 250) >= MIN_INPUTS


# ------------------------------------------------------------------------------------ .mat


def _mat(variables: dict[str, Any], compress: bool = False) -> bytes:
    out = io.BytesIO()
    scipy.io.savemat(out, variables, do_compression=compress)
    return out.getvalue()


def _mat_base() -> dict[str, bytes]:
    return {MAT: _mat({"Mask": BINARY_MASK})}


def _cell(*items: Any) -> np.ndarray:
    """A MATLAB cell array (a numpy object array) holding `items`."""
    cell = np.empty(len(items), dtype=object)
    cell[:] = items
    return cell


_DIMS = struct.pack("<3i", *BINARY_MASK.shape)  # the dimensions subelement of the stored array
_BAD_MASKS = {  # what -> a 'Mask' value no reader may accept as a mask
    "2-D": BINARY_MASK.reshape(6, 28),
    "4-D": BINARY_MASK.reshape(6, 7, 2, 2),
    "1-D": BINARY_MASK.ravel(),
    "empty": np.zeros((6, 7, 0), np.uint8),
    "NaN": np.where(BINARY_MASK > 0, np.nan, 0.0),
    "all NaN": np.full(BINARY_MASK.shape, np.nan),
    "Inf": np.where(BINARY_MASK > 0, np.inf, 0.0),
    "fraction": BINARY_MASK * 0.5,
    "negative": BINARY_MASK.astype(np.int16) * -1,
    "beyond int32": BINARY_MASK * 1e300,
    "complex": BINARY_MASK.astype(np.complex128),
    "cell": _cell(BINARY_MASK, BINARY_MASK[:, :, :2]),
    "struct": {"data": BINARY_MASK},
    "text": "not a mask",
    "sparse": scipy.sparse.csc_matrix(BINARY_MASK[:, :, 0].astype(float)),
}
_GOOD_MASKS = {  # what -> (a valid 'Mask' value, whether it reads as BINARY_MASK)
    **{str(np.dtype(t)): (BINARY_MASK.astype(t), True)
       for t in (np.uint8, np.bool_, np.float64, np.float32, np.int16, np.uint32, np.int64)},
    "labels": (BINARY_MASK * np.arange(1, 5, dtype=np.uint8), False),
}


@st.composite
def mat_cases(draw: st.DrawFn) -> PECase:
    base = _mat_base()[MAT]
    compress = draw(st.booleans())
    how = draw(st.sampled_from(["good", "bad", "wrong name", "extra variable", "dims",
                                "truncate", "append", "flip", "random", "none"]))
    what, rules = f"{how} ({'compressed' if compress else 'plain'})", {"expect": "refuse"}
    if how == "good":
        key = draw(st.sampled_from(sorted(_GOOD_MASKS)))
        value, same = _GOOD_MASKS[key]
        data, what, rules = _mat({"Mask": value}, compress), f"{what} {key}", {
            "expect": "accept", "same": same}
    elif how == "bad":
        key = draw(st.sampled_from(sorted(_BAD_MASKS)))
        data, what = _mat({"Mask": _BAD_MASKS[key]}, compress), f"{what} {key}"
    elif how == "wrong name":
        key = draw(st.sampled_from(["mask", "MASK", "Mask_", "GT"]))
        data, what = _mat({key: BINARY_MASK}, compress), f"{what} {key}"
    elif how == "extra variable":
        data = _mat({"Mask": BINARY_MASK, "Notes": np.arange(5.0)}, compress)
        rules = {"expect": "accept", "same": True}
    elif how == "dims":  # lie about the stored array's dimensions (huge, zero, negative)
        dims = draw(st.lists(st.sampled_from([-1, 0, 1, 4, 6, 7, 10**6, 2**31 - 1]),
                             min_size=3, max_size=3))
        data, what = base.replace(_DIMS, struct.pack("<3i", *dims)), f"plain, dims {dims}"
        # The same number of voxels in another shape is a genuinely valid (reshaped) mask.
        rules = {"expect": "either" if math.prod(dims) == BINARY_MASK.size else "refuse"}
    elif how == "truncate":
        truncated, data = draw(damaged(_mat({"Mask": BINARY_MASK}, compress), how))
        what = f"{what} {truncated}"
    elif how == "append":  # trailing bytes after the variable loadmat needs may be ignored
        data, rules = _mat({"Mask": BINARY_MASK}, compress) + draw(st.binary(min_size=1,
                                                                              max_size=64)), {}
    elif how == "flip":  # a flipped mask byte is another valid label (or refused)
        data, rules = draw(flips(_mat({"Mask": BINARY_MASK}, compress))), {}
    elif how == "random":
        data = draw(st.sampled_from([b"", base[:128]])) + draw(st.binary(max_size=300))
    else:
        data, rules = _mat({"Mask": BINARY_MASK}, compress), {"expect": "accept", "same": True}
    return PECase("mat", what, {MAT: data}, **rules)


def test_fuzz_mat(child, workdir):
    assert _fuzz(child, workdir, mat_cases(), 250) >= MIN_INPUTS


_BASES = {
    **{f"nrrd:{v}": functools.partial(_nrrd_base, v) for v in NRRD_VARIANTS},
    "dicom": _dicom_base,
    "mat": _mat_base,
}

# ------------------------------------------------------------- regression tests, per finding


def _refused(child: ReadingChild, workdir: Path, base: str, files: dict[str, bytes],
             pattern: str) -> None:
    """The case is refused with a one-line PEDataError matching `pattern`."""
    case = PECase(base, pattern, {**_BASES[base](), **files}, "refuse")
    _, message = _read_case(child, workdir, case)
    assert re.search(pattern, message), message


@pytest.mark.parametrize(("field", "value", "pattern"), [
    ("line skip", b"1000000000", r"1\.nrrd.*line skip 1000000000 runs past the end"),
    ("byte skip", b"1000000000000", r"1\.nrrd.*declares 240 data bytes"),
    ("sizes", b"6 5 5", r"1\.nrrd.*declares 300 data bytes"),
    ("sizes", b"6 5 0", r"1\.nrrd.*sizes must be three positive integers"),
    ("sizes", b"60000 60000 60000", r"1\.nrrd.*at most 2147483648 voxels"),
    ("dimension", b"4", r"1\.nrrd.*expected a 3-D volume"),
    ("type", b"block", r"1\.nrrd.*unsupported NRRD type 'block'"),
    ("encoding", b"ascii", r"1\.nrrd.*unsupported NRRD encoding 'ascii'"),
    ("data file", b"/dev/zero", r"1\.nrrd.*detached NRRD data files are not supported"),
    ("space directions", b"(nan,0,0) (0,0.8,0) (0,0,2.5)", r"1\.nrrd.*'space directions'"),
    ("space directions", b"(0,0,0) (0,0.8,0) (0,0,2.5)", r"1\.nrrd.*'space directions'"),
])
def test_regression_nrrd_header_is_bounded_before_reading(child, workdir, field, value,
                                                          pattern):
    """Finding 1: `line skip: 1000000000` looped for 25 minutes; header lies now fail at once."""
    image = _set_field(_nrrd_base("raw-int16")[IMAGE], field, value)
    _refused(child, workdir, "nrrd:raw-int16", {IMAGE: image}, pattern)


def test_regression_nrrd_gzip_is_never_inflated_past_its_declared_size(child, workdir):
    """Finding 1: compressed data may not expand beyond what the header declares."""
    volume = np.zeros((400, 400, 400), np.uint8).tobytes()  # 64 MB of zeros, 62 kB gzipped
    lines, _ = _header_lines(_nrrd_base("gzip-int16")[IMAGE])
    image = b"\n".join([*lines, b"", gzip.compress(volume)])  # header still says 6 x 5 x 4
    _refused(child, workdir, "nrrd:gzip-int16", {IMAGE: image},
             r"1\.nrrd.*does not decompress to exactly the declared 240 bytes")


def test_regression_empty_nrrd_is_a_clear_error(child, workdir):
    """Finding 1: an empty .nrrd gave a traceback (StopIteration in pynrrd)."""
    _refused(child, workdir, "nrrd:raw-int16", {IMAGE: b""}, r"1\.nrrd: empty file")


@pytest.mark.parametrize(("keyword", "value", "pattern"), [
    ("ImageOrientationPatient", b"1\\0\\0\\0\\1", r"IM0002: ImageOrientationPatient must be 6"),
    ("ImagePositionPatient", b"1\\2", r"IM0002: ImagePositionPatient must be 3"),
    ("PixelSpacing", b"ab\\cd", r"IM0002: PixelSpacing must be 2 finite"),
    ("RescaleSlope", b"abc", r"IM0002: RescaleSlope must be 1 finite"),
    ("InstanceNumber", b"x1", r"IM0002: InstanceNumber must be 1 finite"),
])
def test_regression_dicom_tag_errors_name_the_file(child, workdir, keyword, value, pattern):
    """Finding 2: malformed tags raised errors that did not name the file."""
    name = SLICE_NAMES[2]
    data = _with_value(_dicom_base()[name], keyword, value)
    _refused(child, workdir, "dicom", {name: data}, pattern)


def test_regression_interleaved_series_are_refused(child, workdir):
    """Finding 3: two series in one folder became one volume."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k in range(4):  # two series whose slices interleave into one uniform stack
            _write_slice(folder / f"X{k}", np.zeros((6, 7)), k * 1.25 * NORMAL, k + 1,
                         series_uid=f"1.2.3.{k % 2}")
        files = {f"CT_scans/P/IM{k:04d}": (folder / f"X{k}").read_bytes() for k in range(4)}
    _refused(child, workdir, "dicom", files,
             r"CT_scans/P: 2 DICOM series in one folder "
             r"\(SeriesInstanceUID 1\.2\.3\.0, 1\.2\.3\.1\)")


def test_regression_duplicate_instance_numbers_are_refused(child, workdir):
    """Finding 3: equal InstanceNumbers silently fell back to file order for the mask."""
    base = _dicom_base()
    data = _with_value(base[SLICE_NAMES[0]], "InstanceNumber",
                       _value(base[SLICE_NAMES[1]], "InstanceNumber"))
    _refused(child, workdir, "dicom", {SLICE_NAMES[0]: data},
             r"CT_scans/P: InstanceNumber \d+ is shared by IM0000, IM0001")


@pytest.mark.parametrize("what", ["all NaN", "NaN", "Inf", "fraction", "negative", "complex",
                                  "cell", "struct", "text", "beyond int32"])
def test_regression_fumpe_masks_must_be_finite_integer_labels(child, workdir, what):
    """Finding 3: an all-NaN mask became one clot filling the volume, and the reader could return
    an object array."""
    _refused(child, workdir, "dicom", {MAT: _mat({"Mask": _BAD_MASKS[what]})},
             r"P\.mat.*'Mask'")


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_regression_cadpe_masks_must_be_finite_integer_labels(child, workdir, dtype):
    """Finding 3: a CAD-PE reference mask with NaN or negative labels."""
    labels = np.zeros((6, 5, 4), dtype)
    labels[0, 0, 0] = np.nan if dtype == np.float32 else -2
    with tempfile.TemporaryDirectory() as tmp:
        _write_cadpe(Path(tmp), "1", _volume_xyz(), labels, header={"spacings": [1, 1, 1],
                                                                   "encoding": "raw"})
        files = {name: (Path(tmp) / name).read_bytes() for name in (IMAGE, MASK)}
    _refused(child, workdir, "nrrd:raw-int16", files, r"1RefStd\.nrrd: mask")


@pytest.mark.parametrize("dims", [(100000, 100000, 100000), (2**31 - 1, 1, 1), (6, 7, 40000)])
def test_regression_mat_declared_size_is_checked_before_loading(child, workdir, dims):
    """Finding 4: loadmat trusted the declared shape; it must fit the file before any load."""
    data = _mat_base()[MAT].replace(_DIMS, struct.pack("<3i", *dims))
    _refused(child, workdir, "mat", {MAT: data}, r"P\.mat: 'Mask' must be a non-empty "
             r"3-D \(y, x, z\) array the \d+-byte file can hold")


@pytest.mark.parametrize(("variables", "pattern"), [
    ({"mask": BINARY_MASK}, r"no variable 'Mask' \(found \['mask'\]\)"),
    ({"Mask": BINARY_MASK[:, :, 0]}, r"'Mask' must be a non-empty 3-D"),
    ({"Mask": _cell(BINARY_MASK)}, r"'Mask' is a MATLAB 'cell'"),
])
def test_regression_mat_wrong_variable_or_shape(child, workdir, variables, pattern):
    """Finding 4: wrong variable names, dimensions and classes are named in the error."""
    _refused(child, workdir, "mat", {MAT: _mat(variables)}, r"P\.mat: .*" + pattern)


def test_regression_ctscan_takes_only_integer_labels_and_nonempty_volumes():
    """Finding 5: CTScan refuses what the readers refuse."""
    hu = np.zeros((2, 3, 4), np.float32)
    for clots in (np.full(hu.shape, np.nan), np.full(hu.shape, 2**40), hu.astype(object)):
        with pytest.raises(CTDataError, match="clot labels"):
            CTScan("c", hu, (1.0, 1.0, 1.0), clots, "test")
    with pytest.raises(CTDataError, match="no empty axis"):
        CTScan("c", np.zeros((0, 3, 4)), (1.0, 1.0, 1.0), np.zeros((0, 3, 4), int), "test")
    with pytest.raises(CTDataError, match="spacing"):
        CTScan("c", hu, ("a", 1, 1), np.zeros(hu.shape, int), "test")


def test_regression_reader_version_is_part_of_the_cache_key(tmp_path):
    """Finding 6: patch data sets read by the old readers must not be reused from the cache."""
    from ftjax.apps.pe.app import PEApp  # imports JAX: only here, not in the reading child

    assert FORMAT_VERSION >= 2
    assert PEApp(data=f"cadpe:{tmp_path}").generation_params()["readers"] == FORMAT_VERSION
