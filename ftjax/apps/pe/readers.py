"""Readers for public CT pulmonary angiography datasets with per-clot reference masks.

  cadpe  CAD-PE (IEEE DataPort, doi 10.21227/9bw7-6823): `ROOT/images/<id>.nrrd` and reference
         standards `ROOT/rs/<id>RefStd.nrrd`, one integer label per clot.
  fumpe  FUMPE (figshare): one DICOM series per patient in `ROOT/CT_scans/<id>/` (or `ROOT/<id>/`)
         and binary masks `ROOT/GroundTruth/<id>.mat`, variable `Mask`, stored (y, x, z).

Every reader returns `CTScan`s: float32 HU in (z, y, x) order with (z, y, x) spacing in mm and
int32 clot instance labels 1..n (relabelled to consecutive integers). A scan whose mask is all
zero is valid and has no clots. `list_cases` lists case ids without reading any volume, so an
application can split by patient first and load only what it needs with `load_case`.

The files come from the internet, so the readers trust nothing in them: declared sizes are
checked against the bytes present before anything is read or allocated, every header field and
DICOM tag used is checked for count, type and range, and a mask must hold finite non-negative
integer labels. A missing file raises `FileNotFoundError`; anything else wrong with a file raises
`PEDataError` (a `ValueError`) with a one-line message naming the file (or folder) and what was
expected.

[assumed] NRRD voxel values are HU as stored (CAD-PE has no rescale fields); voxel orientation
(direction signs, obliquity) is not resampled, only the axis order and spacing are used.
"""

from __future__ import annotations

import bz2
import io
import math
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nrrd
import numpy as np
import pydicom
import scipy.io
from pydicom.multival import MultiValue
from pydicom.pixels.utils import get_expected_length
from scipy import ndimage

from ftjax.apps.pe.ct import CTDataError, CTScan

FORMAT_VERSION = 2  # changes whenever what a reader returns for the same file changes (cache key)
MAX_VOXELS = 2**31  # a volume or mask declaring more voxels is refused before it is read
_MAX_LABEL = int(np.iinfo(np.int32).max)
_MAX_HEADER_BYTES = 1 << 20  # NRRD headers are a few hundred bytes; a longer one is not a header
_DEFLATE_MAX_RATIO = 1032  # deflate never expands data more than this (bounds a .mat's shapes)


class PEDataError(CTDataError):
    """A PE dataset file that cannot be used as it is (the message names the file and why)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever a file put into it


def _clip(text: str, limit: int = 300) -> str:
    """Text quoted from a file or a library, cut short (a hostile file can make it huge)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(err: BaseException) -> str:
    return _clip(f"{type(err).__name__}: {err}")


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing {what}")
    return path


def _labels(values: np.ndarray, where: str | Path) -> np.ndarray:
    """A mask as int32 labels. Masks hold 0/1 or non-negative integer labels; NaN, fractions,
    negatives, complex, text or objects mean the file is not the mask it claims to be."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise PEDataError(f"{where}: mask must hold binary or integer labels, got dtype "
                          f"{values.dtype}")
    if values.dtype.kind == "f" and not (
        np.isfinite(values).all() and (values == np.round(values)).all()
    ):
        raise PEDataError(f"{where}: mask values must be finite integer labels (found NaN, Inf "
                          "or fractions)")
    if values.size and (values.min() < 0 or values.max() > _MAX_LABEL):
        raise PEDataError(f"{where}: mask labels must lie in 0..{_MAX_LABEL}, got "
                          f"{values.min()}..{values.max()}")
    return values.astype(np.int32)


def _consecutive_labels(values: np.ndarray, where: str | Path) -> np.ndarray:
    """Map the distinct positive labels of a mask to 1..n (0 stays background)."""
    labels = _labels(values, where)
    fg = labels > 0
    out = np.zeros(labels.shape, dtype=np.int32)
    out[fg] = np.searchsorted(np.unique(labels[fg]), labels[fg]) + 1
    return out


def _hu(values: np.ndarray, where: str | Path, slope: float = 1.0,
        intercept: float = 0.0) -> np.ndarray:
    """Stored values as float32 HU (value * slope + intercept); NaN, Inf or values beyond float32
    mean a broken file, not intensities."""
    with np.errstate(over="ignore", invalid="ignore"):
        hu = np.asarray(values).astype(np.float32)
        hu *= slope
        hu += intercept
    if not np.isfinite(hu).all():
        raise PEDataError(f"{where}: intensities include NaN, Inf or values beyond float32")
    return hu


# ----------------------------------------------------------------------------------------- NRRD

_NRRD_TYPES = {  # the NRRD spec's scalar type names -> numpy type codes ("block" is refused)
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16",
                     "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
                    "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                     "signed long long int", "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64",
                     "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}
# Compressed encodings, each a fresh decompressor that can be asked for at most n bytes.
_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    **dict.fromkeys(("gzip", "gz"), lambda: zlib.decompressobj(zlib.MAX_WBITS | 16)),
    **dict.fromkeys(("bzip2", "bz2"), bz2.BZ2Decompressor),
}


@dataclass(frozen=True)
class _NrrdLayout:
    """Where and how an NRRD file's voxels are stored, as its header declares."""

    dtype: np.dtype
    shape: tuple[int, int, int]  # (z, y, x): the reverse of the file's `sizes`
    encoding: str
    line_skip: int
    byte_skip: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _nrrd_header(head: bytes, path: Path) -> tuple[dict[str, Any], int]:
    """The header parsed from the file's first bytes, and the offset where its data begins."""
    if not head:
        raise PEDataError(f"{path}: empty file; expected an NRRD header")
    stream = io.BytesIO(head)
    try:
        header = nrrd.read_header(stream)
    except Exception as err:  # pynrrd raises many types (NRRDError, ValueError, ...) on garbage
        raise PEDataError(
            f"{path}: not a readable NRRD header (corrupt or truncated?): {_cause(err)}"
        ) from err
    if stream.tell() >= _MAX_HEADER_BYTES:
        raise PEDataError(f"{path}: NRRD header does not end within {_MAX_HEADER_BYTES} bytes")
    return dict(header), stream.tell()


def _nrrd_layout(header: dict[str, Any], path: Path) -> _NrrdLayout:
    """The header's data declaration, every field checked before any data is read."""
    for field in ("type", "dimension", "sizes", "encoding"):
        if field not in header:
            raise PEDataError(f"{path}: NRRD header lacks the required field '{field}'")
    if "data file" in header or "datafile" in header:
        raise PEDataError(f"{path}: detached NRRD data files are not supported; expected the "
                          "voxels inside the .nrrd file")
    sizes = np.asarray(header["sizes"])
    if header["dimension"] != 3 or sizes.shape != (3,):
        raise PEDataError(f"{path}: expected a 3-D volume, header says dimension "
                          f"{header['dimension']} with sizes {_clip(str(sizes.tolist()))}")
    if sizes.dtype.kind not in "iu" or (sizes < 1).any() or math.prod(map(int, sizes)) > MAX_VOXELS:
        raise PEDataError(f"{path}: sizes must be three positive integers with at most "
                          f"{MAX_VOXELS} voxels in all, got {sizes.tolist()}")
    if header["type"] not in _NRRD_TYPES:
        raise PEDataError(f"{path}: unsupported NRRD type {_clip(repr(header['type']))}; "
                          "expected an integer or floating-point scalar type")
    encoding = header["encoding"]
    if encoding != "raw" and encoding not in _DECOMPRESSORS:
        raise PEDataError(f"{path}: unsupported NRRD encoding {_clip(repr(encoding))}; expected "
                          "raw, gzip or bzip2")
    dtype = np.dtype(_NRRD_TYPES[header["type"]])
    if dtype.itemsize > 1:
        endian = {"little": "<", "big": ">"}.get(header.get("endian"))
        if endian is None:
            raise PEDataError(f"{path}: endian must be 'little' or 'big' for type "
                              f"{header['type']}, got {_clip(repr(header.get('endian')))}")
        dtype = dtype.newbyteorder(endian)
    line_skip = header.get("line skip", header.get("lineskip", 0))
    byte_skip = header.get("byte skip", header.get("byteskip", 0))
    if line_skip < 0 or byte_skip < -1 or (encoding != "raw" and byte_skip > 0):
        raise PEDataError(f"{path}: line skip {line_skip} / byte skip {byte_skip} out of range "
                          "(line skip >= 0; byte skip >= -1, and 0 or -1 for compressed data)")
    return _NrrdLayout(dtype, tuple(int(s) for s in sizes[::-1]), encoding, line_skip, byte_skip)


def _skip_lines(rest: memoryview, count: int, path: Path) -> memoryview:
    """What follows the first `count` line breaks (found at once: a header's line skip must not
    turn into a loop as long as it says)."""
    if count == 0:
        return rest
    breaks = np.flatnonzero(np.frombuffer(rest, np.uint8) == ord("\n"))
    if count > breaks.size:
        raise PEDataError(f"{path}: line skip {count} runs past the end of the file "
                          f"({breaks.size} line breaks follow the header)")
    return rest[breaks[count - 1] + 1:]


def _nrrd_payload(rest: memoryview, layout: _NrrdLayout, path: Path) -> bytes | memoryview:
    """Exactly the declared data bytes of what follows the header. Raw data must fill the rest of
    the file; compressed data may expand to the declared size and no further, so nothing larger
    than the header's (bounded) declaration is ever allocated."""
    rest = _skip_lines(rest, layout.line_skip, path)
    if layout.encoding == "raw":
        skip = len(rest) - layout.nbytes if layout.byte_skip == -1 else layout.byte_skip
        if skip < 0 or len(rest) - skip != layout.nbytes:
            raise PEDataError(
                f"{path}: the header declares {layout.nbytes} data bytes (byte skip "
                f"{layout.byte_skip}) but {len(rest)} bytes follow it; corrupt or truncated?"
            )
        return rest[skip:]
    decompressor = _DECOMPRESSORS[layout.encoding]()
    try:
        data = decompressor.decompress(rest, max_length=layout.nbytes + 1)
    except (zlib.error, OSError, EOFError, ValueError) as err:
        raise PEDataError(
            f"{path}: corrupt or truncated {layout.encoding} data: {_cause(err)}"
        ) from err
    if len(data) != layout.nbytes or not decompressor.eof or decompressor.unused_data:
        raise PEDataError(
            f"{path}: {layout.encoding} data does not decompress to exactly the declared "
            f"{layout.nbytes} bytes (followed by nothing else); corrupt or truncated?"
        )
    return data


def _axis_steps(field: str, values: np.ndarray) -> np.ndarray | None:
    """The three axis steps (file order) a geometry field gives; None unless they are finite,
    positive and, for direction vectors, independent (zero, parallel or coplanar vectors span
    no volume)."""
    if field == "spacings":
        sound = values.shape == (3,) and np.isfinite(values).all() and (values > 0).all()
        return values if sound else None
    if values.shape != (3, 3) or not np.isfinite(values).all():
        return None
    steps = np.linalg.norm(values, axis=1)
    return steps if abs(np.linalg.det(values)) > 1e-6 * np.prod(steps) else None


def _nrrd_spacing(header: dict[str, Any], path: Path) -> tuple[float, float, float] | None:
    """(z, y, x) spacing: the lengths of `space directions` or else the `spacings`, both in file
    (x, y, z) order; None when the header has neither. Geometry that is present must be sound
    and unambiguous (the NRRD format says to give one or the other, never both)."""
    fields = [f for f in ("space directions", "spacings") if f in header]
    if not fields:
        return None
    if len(fields) > 1:
        raise PEDataError(f"{path}: header gives both 'space directions' and 'spacings'; "
                          "expected one")
    field = fields[0]
    values = np.asarray(header[field], dtype=np.float64)
    steps = _axis_steps(field, values)
    if steps is None:
        raise PEDataError(f"{path}: '{field}' must give three finite, positive, independent "
                          f"axis steps, got {_clip(str(values.tolist()))}")
    return tuple(float(s) for s in steps[::-1])  # type: ignore[return-value]


def read_nrrd(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """A 3-D NRRD file as (array in (z, y, x) order, (z, y, x) spacing in mm or None).

    NRRD stores the fastest axis first (x, y, z), so the C-order array of its `sizes` reversed is
    (z, y, x). The header is parsed and checked (`_nrrd_layout`) before any voxel is read; only
    raw, gzip and bzip2 encodings with the data inside the file are accepted.
    """
    path = Path(path)
    _require_file(path, "NRRD file")
    with path.open("rb") as fh:
        header, offset = _nrrd_header(fh.read(_MAX_HEADER_BYTES), path)
        layout = _nrrd_layout(header, path)
        spacing = _nrrd_spacing(header, path)
        fh.seek(offset)
        payload = _nrrd_payload(memoryview(fh.read()), layout, path)
    return np.frombuffer(payload, layout.dtype).reshape(layout.shape), spacing


def list_cadpe(root: str | Path) -> list[str]:
    """CAD-PE case ids: the stems of `ROOT/images/*.nrrd`, sorted."""
    images = Path(root) / "images"
    if not images.is_dir():
        raise FileNotFoundError(
            f"{images}: missing CAD-PE images folder (expected images/<id>.nrrd)"
        )
    return sorted(p.name[: -len(".nrrd")] for p in images.glob("*.nrrd") if p.is_file())


def load_cadpe(root: str | Path, case_id: str, masks: bool = True) -> CTScan:
    """One CAD-PE case: `images/<id>.nrrd` and its reference standard `rs/<id>RefStd.nrrd`
    (``masks=False``: the image alone, for new cases without a reference)."""
    root = Path(root)
    image_path = _require_file(root / "images" / f"{case_id}.nrrd", "CAD-PE image")
    values, spacing = read_nrrd(image_path)
    if spacing is None:
        raise PEDataError(
            f"{image_path}: no voxel spacing (expected a 'space directions' or 'spacings' field)"
        )
    hu = _hu(values, image_path)
    if not masks:
        return _unlabelled(case_id, hu, spacing, "cadpe")
    mask_path = _require_file(root / "rs" / f"{case_id}RefStd.nrrd", "CAD-PE reference mask")
    labels, mask_spacing = read_nrrd(mask_path)
    if labels.shape != hu.shape:
        raise PEDataError(
            f"{mask_path}: mask shape {labels.shape} (z, y, x) does not match image {image_path} "
            f"shape {hu.shape}"
        )
    if mask_spacing is not None and not np.allclose(mask_spacing, spacing, rtol=1e-3):
        raise PEDataError(
            f"{mask_path}: mask spacing {mask_spacing} does not match image spacing {spacing}"
        )
    return CTScan(case_id, hu, spacing, _consecutive_labels(labels, mask_path), "cadpe")


# ---------------------------------------------------------------------------------------- DICOM


@dataclass(frozen=True)
class _Slice:
    """What a volume needs from one DICOM file, each value checked."""

    path: Path
    series: str  # SeriesInstanceUID ("" when absent)
    position: np.ndarray  # ImagePositionPatient (3,)
    orientation: np.ndarray  # ImageOrientationPatient (6,): row then column direction cosines
    pixel_spacing: np.ndarray  # PixelSpacing (2,): row spacing (y), column spacing (x)
    instance: int | None  # InstanceNumber (None when absent)
    hu: np.ndarray  # float32 (rows, columns)


def _dicom_value(ds: pydicom.Dataset, keyword: str, path: Path) -> Any:
    """An element's value, None when absent or empty. pydicom converts values when they are first
    used, and a garbled one can raise almost any exception there."""
    try:
        value = ds.get(keyword)
    except Exception as err:
        raise PEDataError(f"{path}: unreadable {keyword}: {_cause(err)}") from err
    if value is None or (isinstance(value, str | bytes) and not value.strip()):
        return None
    return value


def _dicom_numbers(ds: pydicom.Dataset, keyword: str, count: int, path: Path,
                   required: bool = False) -> np.ndarray | None:
    """The `count` finite numbers of an element, None when it is absent or empty (an error if
    it is `required`)."""
    value = _dicom_value(ds, keyword, path)
    if value is None and required:
        raise PEDataError(f"{path}: DICOM slice lacks {keyword} (needed for a CT volume)")
    if value is None:
        return None
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        numbers = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        numbers = np.array([np.nan])
    if numbers.shape != (count,) or not np.isfinite(numbers).all():
        raise PEDataError(f"{path}: {keyword} must be {count} finite number(s), got "
                          f"{_clip(repr(value))}")
    return numbers


def _dicom_pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """The slice's 2-D stored pixel values. Uncompressed pixel data must have exactly the length
    its Rows, Columns and bit depth declare (pydicom only warns and trims when there is more)."""
    if "PixelData" not in ds:
        raise PEDataError(f"{path}: DICOM slice lacks PixelData (needed for a CT volume)")
    try:
        declared = get_expected_length(ds, "bytes")
        stored = declared if ds.file_meta.TransferSyntaxUID.is_encapsulated else len(ds.PixelData)
    except Exception as err:  # garbled Rows, Columns, BitsAllocated, transfer syntax, ...
        raise PEDataError(f"{path}: unreadable pixel data description: {_cause(err)}") from err
    if stored not in (declared, declared + declared % 2):
        raise PEDataError(f"{path}: pixel data is {stored} bytes, its image tags declare "
                          f"{declared}; corrupt or truncated?")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken pixel data
        raise PEDataError(f"{path}: unreadable or truncated pixel data: {_cause(err)}") from err
    if pixels.ndim != 2:
        raise PEDataError(f"{path}: expected one 2-D slice per file, got pixels {pixels.shape}")
    return pixels


def _dicom_slice(path: Path) -> _Slice:
    """One DICOM file as a slice: its geometry, series and instance number checked, and its
    pixels in HU (RescaleSlope / RescaleIntercept applied, 1 / 0 when absent)."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # pydicom raises many types on corrupt files
        raise PEDataError(
            f"{path}: not a readable DICOM file (corrupt or truncated?): {_cause(err)}"
        ) from err
    position, orientation, pixel_spacing = (
        _dicom_numbers(ds, keyword, count, path, required=True)
        for keyword, count in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6),
                               ("PixelSpacing", 2))
    )
    instance = _dicom_numbers(ds, "InstanceNumber", 1, path)
    if instance is not None and instance[0] != round(instance[0]):
        raise PEDataError(f"{path}: InstanceNumber must be an integer, got {instance[0]}")
    slope = _dicom_numbers(ds, "RescaleSlope", 1, path)
    if slope is not None and slope[0] == 0:
        raise PEDataError(f"{path}: RescaleSlope is 0, which would erase the image")
    intercept = _dicom_numbers(ds, "RescaleIntercept", 1, path)
    hu = _hu(_dicom_pixels(ds, path), path, 1.0 if slope is None else float(slope[0]),
             0.0 if intercept is None else float(intercept[0]))
    return _Slice(path, str(_dicom_value(ds, "SeriesInstanceUID", path) or ""), position,
                  orientation, pixel_spacing, None if instance is None else int(instance[0]), hu)


def _one_series(slices: list[_Slice], folder: Path) -> None:
    """A folder holds one series: interleaved series would become one wrong volume."""
    uids = sorted({s.series or "(none)" for s in slices})
    if len(uids) > 1:
        raise PEDataError(f"{folder}: {len(uids)} DICOM series in one folder (SeriesInstanceUID "
                          f"{_clip(', '.join(uids))}); expected one series per folder")


def _same_geometry(slices: list[_Slice]) -> None:
    """Every slice shares the first one's size, orientation and pixel spacing, and the
    orientation is a pair of orthogonal unit vectors."""
    ref = slices[0]
    cosines = ref.orientation.reshape(2, 3)
    if not np.allclose(cosines @ cosines.T, np.eye(2), atol=1e-2):
        raise PEDataError(f"{ref.path}: ImageOrientationPatient must be two orthogonal unit "
                          f"vectors, got {ref.orientation.tolist()}")
    if not (ref.pixel_spacing > 0).all():
        raise PEDataError(f"{ref.path}: PixelSpacing must be two positive values, got "
                          f"{ref.pixel_spacing.tolist()}")
    for s in slices[1:]:
        if s.hu.shape != ref.hu.shape:
            raise PEDataError(
                f"{s.path}: slice shape {s.hu.shape} differs from {ref.path} {ref.hu.shape}"
            )
        if not np.allclose(s.orientation, ref.orientation, atol=1e-4):
            raise PEDataError(f"{s.path}: ImageOrientationPatient differs from {ref.path}")
        if not np.allclose(s.pixel_spacing, ref.pixel_spacing, rtol=1e-4):
            raise PEDataError(f"{s.path}: PixelSpacing differs from {ref.path}")


def _acquisition_rank(slices: list[_Slice], folder: Path) -> np.ndarray:
    """rank[i]: slice i's place in InstanceNumber order, which a mask's slices may follow, so the
    numbers must be unique; file-name order only when no slice has one."""
    numbers = [s.instance for s in slices]
    if all(n is None for n in numbers):
        order = list(range(len(slices)))
    else:
        missing = [s.path for s in slices if s.instance is None]
        if missing:
            raise PEDataError(f"{missing[0]}: lacks InstanceNumber while other slices in "
                              f"{folder} have one")
        shared = [n for n, count in Counter(numbers).items() if count > 1]
        if shared:
            names = [s.path.name for s in slices if s.instance == shared[0]]
            raise PEDataError(f"{folder}: InstanceNumber {shared[0]} is shared by "
                              f"{_clip(', '.join(names))}; the mask's slice order follows "
                              "InstanceNumber, so it must be unique")
        order = sorted(range(len(slices)), key=numbers.__getitem__)
    rank = np.empty(len(slices), dtype=np.int64)
    rank[order] = np.arange(len(slices))
    return rank


def read_dicom_series(
    folder: str | Path,
) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """A single-series DICOM folder as (HU (z, y, x), spacing (z, y, x) mm, instance_rank).

    Every regular file in the folder (except hidden files and DICOMDIR) must be a slice of one
    series (one SeriesInstanceUID). Slices are sorted by their position along the slice normal
    (ImagePositionPatient . (row cosines x column cosines)); slice spacing is the step between
    sorted positions, which must be uniform (a missing or duplicated slice is an error); in-plane
    spacing is PixelSpacing (row spacing = y, column spacing = x). instance_rank[j] is the rank of
    sorted slice j in InstanceNumber order (unique numbers; file-name order if no slice has one),
    to reorder masks that follow the acquisition order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing DICOM series folder")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        and p.name.upper() != "DICOMDIR"
    )
    if len(files) < 2:
        raise PEDataError(
            f"{folder}: {len(files)} DICOM file(s); a volume needs at least 2 slices to know its "
            "slice spacing"
        )
    slices = [_dicom_slice(p) for p in files]
    _one_series(slices, folder)
    _same_geometry(slices)
    orientation = slices[0].orientation
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([np.dot(s.position, normal) for s in slices])
    order = np.argsort(positions, kind="stable")
    steps = np.diff(positions[order])
    step = float(np.median(steps))
    if not (step > 1e-3 and np.all(np.abs(steps - step) <= 0.1 * step)):  # False for NaN too
        raise PEDataError(
            f"{folder}: slice positions along the normal are not uniformly spaced (steps "
            f"{_clip(str(np.round(steps, 3).tolist()))} mm); duplicated or missing slices?"
        )
    hu = np.stack([slices[i].hu for i in order])
    pixel_spacing = slices[0].pixel_spacing
    spacing = (step, float(pixel_spacing[0]), float(pixel_spacing[1]))
    return hu, spacing, _acquisition_rank(slices, folder)[order]


def _fumpe_series_root(root: Path) -> Path:
    return root / "CT_scans" if (root / "CT_scans").is_dir() else root


def list_fumpe(root: str | Path) -> list[str]:
    """FUMPE case ids: the patient folders under `ROOT/CT_scans/` (or `ROOT/`), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: missing FUMPE dataset folder")
    series_root = _fumpe_series_root(root)
    return sorted(
        p.name for p in series_root.iterdir()
        if p.is_dir() and p.name != "GroundTruth" and not p.name.startswith(".")
    )


_MAT_CLASSES = frozenset({"logical", "double", "single", "int8", "uint8", "int16", "uint16",
                          "int32", "uint32", "int64", "uint64"})  # numeric, not cell/struct/char


def _declared_mask(path: Path) -> tuple[int, ...]:
    """The shape `Mask` declares, read (with `whosmat`) and checked before any data is loaded: a
    numeric or logical 3-D array no larger than the file can hold, even compressed."""
    size = path.stat().st_size
    if size == 0:
        raise PEDataError(f"{path}: empty file; expected a MATLAB file with variable 'Mask'")
    try:
        declared = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(str(path))}
    except NotImplementedError as err:  # scipy raises this for HDF5-based v7.3 files
        raise PEDataError(
            f"{path}: MATLAB v7.3 (HDF5) file, which scipy.io.loadmat cannot read; re-save it "
            "with save(..., '-v7') or convert the 'Mask' variable to a v7 .mat file"
        ) from err
    except Exception as err:  # scipy raises many types on corrupt files
        raise PEDataError(
            f"{path}: not a readable MATLAB file (corrupt or truncated?): {_cause(err)}"
        ) from err
    if "Mask" not in declared:
        raise PEDataError(f"{path}: no variable 'Mask' (found {_clip(str(sorted(declared)))})")
    shape, cls = declared["Mask"]
    if cls not in _MAT_CLASSES:
        raise PEDataError(f"{path}: 'Mask' is a MATLAB {_clip(repr(cls))}; expected a numeric or "
                          "logical array")
    voxels = math.prod(shape)
    if len(shape) != 3 or voxels == 0 or voxels > min(MAX_VOXELS, _DEFLATE_MAX_RATIO * size):
        raise PEDataError(f"{path}: 'Mask' must be a non-empty 3-D (y, x, z) array the "
                          f"{size}-byte file can hold, declared shape {_clip(str(shape))}")
    return tuple(shape)


def read_fumpe_mask(path: str | Path) -> np.ndarray:
    """A FUMPE ground-truth mask: variable `Mask` of a MATLAB (< v7.3) file, as stored (y, x, z),
    as int32 labels (binary or non-negative integers; anything else is refused)."""
    path = _require_file(Path(path), "FUMPE ground-truth mask (.mat)")
    shape = _declared_mask(path)
    try:
        mask = scipy.io.loadmat(str(path), variable_names=["Mask"]).get("Mask")
    except Exception as err:  # scipy raises many types on corrupt files
        raise PEDataError(
            f"{path}: not a readable MATLAB file (corrupt or truncated?): {_cause(err)}"
        ) from err
    if not isinstance(mask, np.ndarray) or mask.shape != shape:
        raise PEDataError(f"{path}: 'Mask' does not hold the {shape} array its header declares")
    return _labels(mask, f"{path}: 'Mask'")


def load_fumpe(
    root: str | Path,
    case_id: str,
    mask_slice_order: Literal["instance", "position"] = "instance",
    masks: bool = True,
) -> CTScan:
    """One FUMPE patient: its DICOM series and `GroundTruth/<id>.mat` (binary, (y, x, z)).

    The binary mask becomes instance labels by 3-D connected components (26-connectivity [assumed]:
    voxels touching at a corner belong to one clot). [assumed] The mask's z axis follows the
    series' InstanceNumber order (`mask_slice_order="instance"`); pass "position" if it follows
    the slice position order instead. Nonzero mask values count as clot.
    """
    root = Path(root)
    folder = _fumpe_series_root(root) / case_id
    if not masks:
        hu, spacing, _ = read_dicom_series(folder)
        return _unlabelled(case_id, hu, spacing, "fumpe")
    mask = read_fumpe_mask(root / "GroundTruth" / f"{case_id}.mat")
    hu, spacing, rank = read_dicom_series(folder)
    expected = (hu.shape[1], hu.shape[2], hu.shape[0])
    if mask.shape != expected:
        raise PEDataError(
            f"{root / 'GroundTruth' / f'{case_id}.mat'}: Mask shape {mask.shape} does not match "
            f"the series in {folder}: expected (y, x, z) = {expected}"
        )
    mask_zyx = np.transpose(mask, (2, 0, 1))
    if mask_slice_order == "instance":
        mask_zyx = mask_zyx[rank]
    elif mask_slice_order != "position":
        raise ValueError(
            f"mask_slice_order must be 'instance' or 'position', got {mask_slice_order!r}"
        )
    clots, _ = ndimage.label(mask_zyx != 0, structure=np.ones((3, 3, 3), dtype=bool))
    return CTScan(case_id, hu, spacing, clots.astype(np.int32), "fumpe")


def _unlabelled(case_id: str, hu: np.ndarray, spacing: tuple[float, float, float],
                source: str) -> CTScan:
    """A scan read without its reference: ``clots`` is all zero and means "not known"."""
    return CTScan(case_id, np.asarray(hu, np.float32), spacing, np.zeros(hu.shape, np.int32),
                  source)


# ------------------------------------------------------------------------------------- dispatch

_DATASETS: dict[str, tuple[Callable[[str | Path], list[str]], Callable[..., CTScan]]] = {
    "cadpe": (list_cadpe, load_cadpe),
    "fumpe": (list_fumpe, load_fumpe),
}

DATASETS = tuple(_DATASETS)  # the --data=NAME:DIR names


def _dataset(name: str) -> tuple[Callable[[str | Path], list[str]], Callable[..., CTScan]]:
    if name not in _DATASETS:
        raise ValueError(f"unknown PE dataset {name!r}; known: {sorted(_DATASETS)}")
    return _DATASETS[name]


def list_cases(dataset: str, root: str | Path) -> list[str]:
    """Case (patient) ids of a dataset folder, without reading volumes (split by patient first)."""
    return _dataset(dataset)[0](root)


def load_case(dataset: str, root: str | Path, case_id: str, masks: bool = True) -> CTScan:
    """Load one case of `dataset` ("cadpe" or "fumpe") from its folder; ``masks=False`` reads
    the CT alone (new cases without a reference standard)."""
    return _dataset(dataset)[1](root, case_id, masks=masks)
