"""What the reader tests write: files in the real formats, the check that a bad input is refused
with one line naming the file, and the byte-level mutations several fuzz families share (bit
flips, damaged texts, TIFF header lies and whole-image mutations)."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import strategies as st
from PIL import Image

# ----------------------------------------------------------------------------- file writers


def encode(array: np.ndarray, suffix: str) -> bytes:
    """An array in a file format: TIFF with tifffile, the others with Pillow."""
    out = io.BytesIO()
    if suffix in (".tif", ".tiff"):
        tifffile.imwrite(out, array)
    else:
        Image.fromarray(array).save(out, format=Image.registered_extensions()[suffix])
    return out.getvalue()


def write(path: Path, content: bytes | str | np.ndarray) -> Path:
    """Write bytes, text (UTF-8) or an array (encoded by the path's suffix), making folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content if isinstance(content, bytes) else encode(content, path.suffix))
    return path


def refused(error: type[Exception], call: Callable[[], object], path: Path,
            pattern: str) -> None:
    """`call()` raises `error` with a one-line message that starts with `path` and matches
    `pattern`."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert re.search(pattern, message), message


# ------------------------------------------------------------------------------- mutations


@st.composite
def flips(draw: st.DrawFn, data: bytes, start: int = 0, end: int | None = None) -> bytes:
    """`data` with 1 to 8 bits flipped between byte offsets `start` and `end` (at most its
    length)."""
    out = bytearray(data)
    end = len(data) if end is None else min(len(data), end)
    for p in draw(st.lists(st.integers(8 * start, 8 * end - 1), min_size=1, max_size=8)):
        out[p // 8] ^= 1 << (p % 8)
    return bytes(out)


DAMAGES = ("truncate", "flip", "random")


@st.composite
def damaged(draw: st.DrawFn, data: bytes, kind: str,
            random_size: tuple[int, int] = (0, 300)) -> tuple[str, bytes]:
    """(what, bytes): `data` truncated, with bits flipped, or replaced by random bytes of a size
    within `random_size`, as `kind` (one of DAMAGES) says."""
    if kind == "truncate":
        cut = draw(st.integers(0, len(data) - 1))
        return f"truncated to {cut} of {len(data)} bytes", data[:cut]
    if kind == "flip":
        return "bits flipped", draw(flips(data))
    assert kind == "random", kind
    return "random bytes", draw(st.binary(min_size=random_size[0], max_size=random_size[1]))


_INTERESTING = (0, 1, 2, 3, 4, 8, 16, 255, 256, 32767, 65535, 2**31 - 1, 2**32 - 1)

_TIFF_TAGS = {256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
              262: "Photometric", 273: "StripOffsets", 277: "SamplesPerPixel",
              278: "RowsPerStrip", 279: "StripByteCounts", 284: "PlanarConfig"}


def tiff_lies(data: bytes) -> dict[str, tuple[int, int, str]]:
    """The first IFD's tag values of a little-endian classic TIFF: field -> (offset, width in
    bytes, struct byte order)."""
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    lies = {"IFD offset": (4, 4, "<"), "IFD entry count": (ifd, 2, "<")}
    for i in range(count):
        tag, kind = struct.unpack_from("<HH", data, ifd + 2 + 12 * i)
        if tag in _TIFF_TAGS:
            lies[_TIFF_TAGS[tag]] = (ifd + 10 + 12 * i, 2 if kind == 3 else 4, "<")
            lies[_TIFF_TAGS[tag] + " count"] = (ifd + 6 + 12 * i, 4, "<")
    return lies


@st.composite
def image_mutation(draw: st.DrawFn, data: bytes, lies: dict[str, tuple[int, int, str]],
                   other_size: tuple[str, bytes]) -> tuple[str, bytes, bool]:
    """(what, mutated bytes, must be refused) for one image file: truncated, bits flipped (in
    the header or anywhere), random, a header field of `lies` (field -> offset, width in bytes,
    struct byte order) set to an interesting value, replaced by `other_size` (what, bytes: an
    image of another size), or empty."""
    kind = draw(st.sampled_from(("truncate", "flip header", "flip", "random", "lie",
                                 "other size", "empty")))
    if kind == "truncate":
        cut = draw(st.integers(0, len(data) // 2))
        return f"truncated to {cut} bytes", data[:cut], True
    if kind == "flip header":
        return "bits flipped in the first 200 bytes", draw(flips(data, end=200)), False
    if kind == "flip":
        return "bits flipped", draw(flips(data)), False
    if kind == "random":
        size = draw(st.integers(1, 2000))
        return f"{size} random bytes", draw(st.binary(min_size=size, max_size=size)), False
    if kind == "lie":
        field = draw(st.sampled_from(sorted(lies)))
        offset, width, order = lies[field]
        value = draw(st.sampled_from(_INTERESTING)) % (1 << (8 * width))
        packed = value.to_bytes(width, "little" if order == "<" else "big")
        return f"{field} = {value}", data[:offset] + packed + data[offset + width:], False
    if kind == "other size":
        return *other_size, True
    return "empty file", b"", True
