"""Colonoscopy dataset readers, on small files written in the real formats (tifffile and Pillow
for TIFF, Pillow for JPEG/PNG, json, csv), plus fuzz families of mutated TIFF, JPEG and CSV/JSON
inputs read in a child process with a timeout (derandomized hypothesis).

Fuzz contract: every read ends in `ColonoscopyDataError` with a one-line message that starts with
a path in the case folder, or returns sane records and frames (uint8 RGB [H, W, 3], bool masks of
the frame's size); it is refused when the mutation leaves no valid input, answers within
READ_TIMEOUT_S and writes nothing.

Inputs per family (examples drawn, distinct inputs read; each family asserts >= MIN_INPUTS):
  TIFF frames and masks (CVC-ClinicDB)       90 drawn, 81 distinct
  JPEG frames and masks (Kvasir-SEG)         70 drawn, 63 distinct
  Kvasir-SEG box JSON                        60 drawn, 59 distinct
  labels.csv and the CVC sequence CSV        70 drawn, 64 distinct
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from fuzz_support import DAMAGES, damaged, encode, image_mutation, refused, tiff_lies, write
from hypothesis import strategies as st
from PIL import Image
from reading_child import MIN_INPUTS, Case, child_fixture, fuzz

from ftjax.apps.colonoscopy.readers import (
    DATASETS,
    MAX_PIXELS,
    SPLIT_BY_IMAGE,
    Box,
    ColonoscopyDataError,
    list_frames,
    load_frame,
    read_mask,
    read_rgb,
    split_by_image,
)

H, W = 24, 32

# ----------------------------------------------------------------------------- file writers


def _rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth colour frame (JPEG keeps it close) with a seed-dependent tint."""
    y, x = np.mgrid[0:h, 0:w]
    tint = np.array([40, 90, 140]) + 10 * seed
    return np.clip(tint + 3 * x[..., None] + 2 * y[..., None], 0, 255).astype(np.uint8)


def _mask(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """An elliptic polyp, large enough that JPEG ringing stays below the 128 threshold."""
    y, x = np.mgrid[0:h, 0:w]
    return ((y - 11 - seed % 3) / 7.5) ** 2 + ((x - 15 - seed % 4) / 9.5) ** 2 <= 1


def _grey(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def _pair(root: Path, frame: str, mask: str, seed: int, channels: int = 1) -> None:
    """A frame and its mask (grey, or RGB with `channels=3` as Kvasir-SEG ships them)."""
    write(root / frame, _rgb(seed))
    grey = _grey(_mask(seed))
    write(root / mask, grey if channels == 1 else np.repeat(grey[..., None], channels, 2))


def _csv(path: Path, rows: list[list[Any]]) -> Path:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return write(path, out.getvalue().encode())


def _cvc(root: Path, ids=("1", "2", "10")) -> Path:
    for i, name in enumerate(ids):
        _pair(root, f"Original/{name}.tif", f"Ground Truth/{name}.tif", i)
    return root


def _kvasir_entry(h: int = H, w: int = W, **box: Any) -> dict[str, Any]:
    return {"height": h, "width": w,
            "bbox": [{"label": "polyp", "xmin": 8, "ymin": 4, "xmax": 24, "ymax": 16} | box]}


def _kvasir(root: Path, ids=("cju0a", "cju0b"), boxes: Any = True) -> Path:
    for i, name in enumerate(ids):
        _pair(root, f"images/{name}.jpg", f"masks/{name}.jpg", i, channels=3)
    if boxes is True:
        boxes = {name: _kvasir_entry() for name in ids}
    if boxes is not None:
        write(root / "kavsir_bboxes.json", json.dumps(boxes).encode())
    return root


def _folder(root: Path) -> Path:
    for i, name in enumerate(("informative/v1_1.jpg", "informative/v2_7.jpg",
                              "non-informative/v1_2.jpg", "non-informative/v_x_3.jpg")):
        write(root / name, _rgb(i))
    return root


def _check_frames(records, expected_ids, masks: bool, tolerance: int = 0) -> None:
    """The records' ids in order, and every frame and mask as written by `_pair`."""
    assert [r.frame_id for r in records] == expected_ids
    for seed, record in enumerate(records):
        rgb, mask = load_frame(record)
        assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
        assert np.abs(rgb.astype(int) - _rgb(seed)).max() <= tolerance
        if masks:
            assert mask.dtype == bool
            np.testing.assert_array_equal(mask, _mask(seed))
        else:
            assert mask is None


# ------------------------------------------------------------------------------ the layouts


def test_datasets_are_the_data_names():
    assert DATASETS == ("cvc-clinicdb", "etis-larib", "kvasir-seg", "asu-mayo", "folder")


def test_cvc_clinicdb_splits_by_image_without_a_sequence_csv(tmp_path):
    records = list_frames("cvc-clinicdb", _cvc(tmp_path))
    _check_frames(records, ["1", "2", "10"], masks=True)
    assert all(r.video is None for r in records) and split_by_image(records)
    assert SPLIT_BY_IMAGE == "split by image: no sequence mapping"
    assert records[0].image == tmp_path / "Original" / "1.tif"


def test_cvc_clinicdb_sequences_from_csv(tmp_path):
    _cvc(tmp_path)
    table = _csv(tmp_path / "seq.csv", [["frame", "sequence"], ["10", "s2"], ["1", "s1"],
                                        ["2", "s1"]])
    records = list_frames("cvc-clinicdb", tmp_path, sequences=table)
    assert [(r.frame_id, r.video) for r in records] == [("1", "s1"), ("2", "s1"), ("10", "s2")]
    assert not split_by_image(records)


def test_cvc_clinicdb_images_masks_layout_in_png(tmp_path):
    for i in range(2):
        _pair(tmp_path, f"images/{i}.png", f"masks/{i}.png", i)
    _check_frames(list_frames("cvc-clinicdb", tmp_path), ["0", "1"], masks=True)


def test_etis_larib_layouts(tmp_path):
    for i in (1, 2):
        _pair(tmp_path / "shipped", f"ETIS-LaribPolypDB/{i}.tif", f"GroundTruth/p{i}.tif", i - 1)
        _pair(tmp_path / "flat", f"{i}.tif", f"p{i}.tif", i - 1)
        _pair(tmp_path / "split", f"images/{i}.png", f"masks/{i}.png", i - 1)
    for layout in ("shipped", "flat", "split"):
        records = list_frames("etis-larib", tmp_path / layout)
        _check_frames(records, ["1", "2"], masks=True)
        assert split_by_image(records)


def test_kvasir_seg_thresholds_jpeg_masks_and_reads_boxes(tmp_path):
    records = list_frames("kvasir-seg", _kvasir(tmp_path))
    _check_frames(records, ["cju0a", "cju0b"], masks=True, tolerance=8)
    raw = np.asarray(Image.open(records[0].mask).convert("L"))
    assert not np.isin(raw, (0, 255)).all()  # the JPEG mask is really not binary
    assert records[0].boxes == (Box("polyp", 8, 4, 24, 16),) and records[0].size == (H, W)
    assert split_by_image(records)
    assert list_frames("kvasir-seg", _kvasir(tmp_path / "nobox", boxes=None))[0].boxes is None


def test_asu_mayo_splits_by_video(tmp_path):
    seed = 0
    for video in ("2", "10"):
        for frame in ("a", "b"):
            _pair(tmp_path / video, f"Frame/{frame}.jpg", f"GT/{frame}.png", seed)
            seed += 1
    records = list_frames("asu-mayo", tmp_path)
    assert [r.video for r in records] == ["2", "2", "10", "10"]
    _check_frames(records, ["2/a", "2/b", "10/a", "10/b"], masks=True, tolerance=8)
    assert not split_by_image(records)


def test_folder_class_layout_and_labels_csv(tmp_path):
    records = list_frames("folder", _folder(tmp_path))
    assert [(r.frame_id, r.video, r.informative) for r in records] == [
        ("informative/v1_1", "v1", True), ("informative/v2_7", "v2", True),
        ("non-informative/v1_2", "v1", False), ("non-informative/v_x_3", "v_x", False)]
    _check_frames(records, [r.frame_id for r in records], masks=False, tolerance=8)
    _csv(tmp_path / "labels.csv", [["image", "video", "label"],
                                   ["informative/v1_1.jpg", "A", "informative"],
                                   ["non-informative/v1_2.jpg", "B", "non-informative"]])
    records = list_frames("folder", tmp_path)
    assert [(r.frame_id, r.video, r.informative) for r in records] == [
        ("informative/v1_1", "A", True), ("non-informative/v1_2", "B", False)]


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK"])
def test_pixel_modes_become_rgb(tmp_path, mode):
    """Grey is copied into three channels, alpha dropped, palettes and CMYK converted."""
    rgb = _rgb(0)
    image = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("f.jpg" if mode == "CMYK" else "f.png" if mode != "P" else "f.tif")
    image.save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    if mode == "CMYK":  # a JPEG: lossy
        assert np.abs(out.astype(int) - rgb).max() <= 8
    else:
        np.testing.assert_array_equal(out, np.asarray(image.convert("RGB")))
    if mode in ("L", "LA"):
        assert (out == out[..., :1]).all()


def test_masks_of_zero_and_one_are_read_as_binary(tmp_path):
    path = write(tmp_path / "m.png", _mask(0).astype(np.uint8))
    np.testing.assert_array_equal(read_mask(path), _mask(0))


# ---------------------------------------------------------------------------- bad inputs

_refused = functools.partial(refused, ColonoscopyDataError)  # one line that names the file


def _png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels (its data is a few bytes: a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


_SIDE = math.isqrt(MAX_PIXELS) + 1  # a square of this side is just over the bound
BAD_IMAGES = {  # name -> (content, message pattern)
    "truncated": (lambda: encode(_rgb(0), ".tif")[:300], "unreadable image"),
    "random bytes": (lambda: np.random.default_rng(0).bytes(500), "unreadable image"),
    "not an image": (lambda: b"Original,Ground Truth\n1,2\n", "unreadable image"),
    "empty": (lambda: b"", "unreadable image"),
    "bomb under PIL's limit": (lambda: _png_header(_SIDE, _SIDE),
                               f"declared size {_SIDE}x{_SIDE}"),
    "bomb over PIL's limit": (lambda: _png_header(20000, 20000), "unreadable image"),
    "16-bit": (lambda: encode(np.zeros((H, W), np.uint16), ".tif"), "mode 'I;16'"),
    "float": (lambda: encode(np.zeros((H, W), np.float32), ".tif"), "mode 'F'"),
    "multi-page": (lambda: encode(np.stack([_grey(_mask(0))] * 2), ".tif"), "2 pages"),
    "eps is never decoded": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n",
                             "unreadable image"),
}


@pytest.mark.parametrize("which", ["Original", "Ground Truth"])
@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_frames_and_masks_name_the_file(tmp_path, which, name):
    content, pattern = BAD_IMAGES[name]
    path = write(_cvc(tmp_path) / which / "2.tif", content())
    records = list_frames("cvc-clinicdb", tmp_path)
    _refused(lambda: load_frame(records[1]), path, pattern)


def test_mask_of_another_size(tmp_path):
    path = write(_cvc(tmp_path) / "Ground Truth" / "1.tif", _grey(_mask(0, H, W + 1)))
    _refused(lambda: load_frame(list_frames("cvc-clinicdb", tmp_path)[0]), path,
             "mask size 24x33 differs from frame")


def test_kvasir_image_of_another_size_than_declared(tmp_path):
    _kvasir(tmp_path, boxes={"cju0a": _kvasir_entry(h=H + 1), "cju0b": _kvasir_entry()})
    _refused(lambda: load_frame(list_frames("kvasir-seg", tmp_path)[0]),
             tmp_path / "images" / "cju0a.jpg", "differs from the 25x32 its metadata declares")


def _listing_cases() -> dict[str, tuple[str, Any, str, str]]:
    """name -> (dataset, set-up of the folder returning extra kwargs, file, pattern)."""
    def box(**kw):
        return lambda root: _kvasir(root, boxes={"cju0a": _kvasir_entry(**kw),
                                                 "cju0b": _kvasir_entry()})

    def raw_json(data):
        return lambda root: write(_kvasir(root, boxes=None) / "kavsir_bboxes.json", data)

    def labels(*rows):
        return lambda root: (_folder(root), _csv(root / "labels.csv", list(rows)))

    def sequences(*rows):
        return lambda root: {"sequences": _csv(_cvc(root) / "s.csv", list(rows))}

    header = ["image", "video", "label"]
    return {
        "missing folder": ("cvc-clinicdb", lambda root: None, "nowhere", "missing"),
        "empty folder": ("cvc-clinicdb", lambda root: (root / "nowhere").mkdir(), "nowhere",
                         "no frames found .*Original/N"),
        "empty frames folder": ("etis-larib", lambda root: (root / "nowhere" / "images").mkdir(
            parents=True), "nowhere/images", "no frames found"),
        "asu-mayo without videos": ("asu-mayo", lambda root: (root / "nowhere" / "v").mkdir(
            parents=True), "nowhere", "no frames found .*VIDEO/Frame"),
        "frame without mask": ("cvc-clinicdb", lambda root: (
            _cvc(root / "nowhere"), (root / "nowhere/Ground Truth/2.tif").unlink()),
            "nowhere/Original/2.tif", "frame without a mask"),
        "etis frame without mask": ("etis-larib", lambda root: write(
            root / "nowhere" / "3.tif", _rgb(0)), "nowhere/3.tif", "without a mask .*p3"),
        "two images, one stem": ("kvasir-seg", lambda root: write(
            _kvasir(root / "nowhere", boxes=None) / "images" / "cju0a.png", _rgb(0)),
            "nowhere/images/cju0a", "two images"),
        "one class": ("folder", lambda root: shutil.rmtree(
            _folder(root / "nowhere") / "non-informative"), "nowhere", "only informative"),
        "no video in name": ("folder", lambda root: write(
            _folder(root / "nowhere") / "informative" / "frame.jpg", _rgb(0)),
            "nowhere/informative/frame.jpg", "no video id"),
        "labels missing column": ("folder", labels(["image", "label"]), "labels.csv",
                                  r"missing columns \['video'\]"),
        "labels unknown class": ("folder", labels(header, ["informative/v1_1.jpg", "A", "blur"]),
                                 "labels.csv", "line 2: label 'blur'"),
        "labels one class": ("folder", labels(header, ["informative/v1_1.jpg", "A",
                                                       "informative"]),
                             "labels.csv", "only informative"),
        "labels path escapes": ("folder", labels(header, ["../x.jpg", "A", "informative"]),
                                "labels.csv", "not a file inside"),
        "labels missing image": ("folder", labels(header, ["informative/no.jpg", "A",
                                                           "informative"]),
                                 "labels.csv", "not a file inside"),
        "labels short row": ("folder", labels(header, ["informative/v1_1.jpg"]), "labels.csv",
                             "fewer than 3 fields"),
        "labels not utf-8": ("folder", lambda root: (_folder(root), write(
            root / "labels.csv", b"image,video,label\n\xff\xfe,\x00,\n")), "labels.csv",
            "not UTF-8"),
        "sequences unknown frame": ("cvc-clinicdb", sequences(["frame", "sequence"], ["7", "a"]),
                                    "s.csv", "unknown frame '7'"),
        "sequences unmapped frame": ("cvc-clinicdb", sequences(["frame", "sequence"], ["1", "a"]),
                                     "s.csv", "no sequence for 2 frames"),
        "sequences twice": ("cvc-clinicdb", sequences(["frame", "sequence"], ["1", "a"],
                                                      ["1", "b"]), "s.csv", "listed twice"),
        "sequences missing column": ("cvc-clinicdb", sequences(["frame", "video"]), "s.csv",
                                     "missing columns"),
        "json not json": ("kvasir-seg", raw_json(b"{'a': 1"), "kavsir_bboxes.json", "not JSON"),
        "json not an object": ("kvasir-seg", lambda root: _kvasir(root, boxes=[1]),
                               "kavsir_bboxes.json", "expected a JSON object"),
        "json unknown id": ("kvasir-seg", lambda root: _kvasir(root, boxes={
            "cju0a": _kvasir_entry(), "cju0b": _kvasir_entry(), "zz": _kvasir_entry()}),
            "kavsir_bboxes.json", "unknown image id 'zz'"),
        "json missing id": ("kvasir-seg", lambda root: _kvasir(root, boxes={
            "cju0a": _kvasir_entry()}), "kavsir_bboxes.json", "no entry for image 'cju0b'"),
        "json text box": ("kvasir-seg", box(xmin="8"), "kavsir_bboxes.json",
                          "box xmin is '8'; expected a number"),
        "json bool box": ("kvasir-seg", box(ymax=True), "kavsir_bboxes.json", "expected a number"),
        "json box outside": ("kvasir-seg", box(xmax=W + 1), "kavsir_bboxes.json",
                             "outside the 32x24 image"),
        "json empty box": ("kvasir-seg", box(xmin=24), "kavsir_bboxes.json", "empty or outside"),
        "json box without label": ("kvasir-seg", box(label=3), "kavsir_bboxes.json",
                                   "expected {label"),
        "json huge size": ("kvasir-seg", lambda root: _kvasir(root, boxes={
            "cju0a": _kvasir_entry(h=2**40), "cju0b": _kvasir_entry()}), "kavsir_bboxes.json",
            "expected whole pixels"),
        "json integer beyond float": ("kvasir-seg", box(xmax=10**400), "kavsir_bboxes.json",
                                      "box xmax is 1000"),
        "json 5000 digits": ("kvasir-seg", raw_json(b'{"cju0a": ' + b"9" * 5000 + b"}"),
                             "kavsir_bboxes.json", "not JSON .*digits"),
        "json nested deep": ("kvasir-seg", raw_json(b"[" * 100000), "kavsir_bboxes.json",
                             "not JSON"),
        "json no bbox list": ("kvasir-seg", lambda root: _kvasir(root, boxes={
            "cju0a": {"height": H, "width": W}, "cju0b": _kvasir_entry()}),
            "kavsir_bboxes.json", "expected {height, width, bbox"),
    }


LISTING = _listing_cases()


@pytest.mark.parametrize("name", list(LISTING))
def test_bad_layouts_and_metadata_name_the_file(tmp_path, name):
    dataset, setup, where, pattern = LISTING[name]
    root = tmp_path / "nowhere" if where.startswith("nowhere") else tmp_path
    kwargs = setup(tmp_path)
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    _refused(lambda: list_frames(dataset, root, **kwargs), tmp_path / where, pattern)


def test_unknown_dataset_and_misplaced_sequences(tmp_path):
    with pytest.raises(ValueError, match="unknown colonoscopy dataset"):
        list_frames("cvc-colondb", tmp_path)
    with pytest.raises(ValueError, match="cvc-clinicdb only"):
        list_frames("kvasir-seg", tmp_path, sequences=tmp_path / "s.csv")


# ------------------------------------------------------------------------------------- fuzz

_SEQUENCE_CSV = {"cvc-clinicdb": "s.csv"}  # dataset -> the sequence CSV its fuzz cases hold


def _read(dataset: str, folder: Path) -> list[tuple[Any, ...]]:
    """What the child does: list a case folder and load every frame; a summary per frame."""
    sequences = _SEQUENCE_CSV.get(dataset)
    records = list_frames(dataset, folder, sequences=sequences and folder / sequences)
    out = []
    for r in records:
        rgb, mask = load_frame(r)
        sane = (rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
                and (mask is None or (mask.dtype == bool and mask.shape == rgb.shape[:2])))
        digest = hashlib.sha256(rgb.tobytes() + (b"" if mask is None else mask.tobytes()))
        out.append((sane, r.frame_id, r.video, r.informative, r.boxes, digest.hexdigest()))
    return out


child = child_fixture(_read, ColonoscopyDataError)


def _jpeg_lies(data: bytes) -> dict[str, tuple[int, int, str]]:
    """The SOF0 fields of a baseline JPEG: field -> (offset, width)."""
    sof = data.index(b"\xff\xc0")
    return {"SOF length": (sof + 2, 2, ">"), "precision": (sof + 4, 1, ">"),
            "height": (sof + 5, 2, ">"), "width": (sof + 7, 2, ">"),
            "components": (sof + 9, 1, ">")}


@functools.cache
def _tiff_base() -> dict[str, bytes]:
    files = {f"{folder}/{i}.tif": encode(array, ".tif") for i in (1, 2)
             for folder, array in (("Original", _rgb(i)), ("Ground Truth", _grey(_mask(i))))}
    files["Original/3.tif"] = encode(_rgb(3), ".tif")
    out = io.BytesIO()
    tifffile.imwrite(out, _grey(_mask(3)), compression="zlib")  # a compressed mask too
    files["Ground Truth/3.tif"] = out.getvalue()
    files["s.csv"] = b"frame,sequence\n1,a\n2,a\n3,b\n"
    return files


@functools.cache
def _jpeg_base() -> dict[str, bytes]:
    return {f"{folder}/{i}.jpg": encode(array, ".jpg") for i in (1, 2)
            for folder, array in (("images", _rgb(i)), ("masks", _grey(_mask(i))))}


def _image_cases(dataset: str, base: dict[str, bytes], lies: Any,
                 other: bytes) -> st.SearchStrategy[Case]:
    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        files = dict(base)
        name = draw(st.sampled_from(sorted(n for n in files if not n.endswith(".csv"))))
        what, files[name], refuse = draw(image_mutation(files[name], lies(files[name]),
                                                        ("mask of another size", other)))
        refuse = refuse and (what != "mask of another size" or not name.startswith(
            ("Original", "images")))  # a frame of another size has a mask that mismatches it
        return Case(dataset, f"{name}: {what}", files, "refuse" if refuse else "either")
    return cases()


def test_fuzz_tiff_frames_and_masks(child, tmp_path):
    cases = _image_cases("cvc-clinicdb", _tiff_base(), tiff_lies,
                         encode(_grey(_mask(0, H + 2, W)), ".tif"))
    assert fuzz(child, tmp_path / "case", cases, 90) >= MIN_INPUTS


def test_fuzz_jpeg_frames_and_masks(child, tmp_path):
    cases = _image_cases("kvasir-seg", _jpeg_base(), _jpeg_lies,
                         encode(_grey(_mask(0, H, W - 3)), ".jpg"))
    assert fuzz(child, tmp_path / "case", cases, 70) >= MIN_INPUTS


_JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.just(10**400), st.just(-1), st.just(0),
                         st.floats(allow_nan=True), st.text(max_size=5),
                         st.just([]), st.just({}))


@st.composite
def _json_cases(draw: st.DrawFn) -> Case:
    """Kvasir-SEG with its box JSON mutated: truncated, flipped, or a field set to a lie."""
    files = dict(_jpeg_base())
    entries = {i: _kvasir_entry() for i in ("1", "2")}
    text = json.dumps(entries).encode()
    kind = draw(st.sampled_from(("truncate", "flip", "field", "drop", "id")))
    if kind in DAMAGES:
        what, text = draw(damaged(text, kind))
        expect = "refuse" if kind == "truncate" else "either"
    else:
        image = draw(st.sampled_from(("1", "2")))
        field = draw(st.sampled_from(("height", "width", "bbox", "label", "xmin", "ymin",
                                      "xmax", "ymax")))
        target = entries[image] if field in ("height", "width", "bbox") else \
            entries[image]["bbox"][0]
        if kind == "field":
            value = draw(_JSON_VALUES)
            target[field] = value
            what, expect = f"{image} {field} = {value!r}", "either"
        elif kind == "drop":
            del target[field]
            what, expect = f"{image} without {field}", "refuse"
        else:
            entries[draw(st.text(min_size=1, max_size=4))] = entries.pop(image)
            what, expect = f"{image} renamed", "refuse"
        text = json.dumps(entries, allow_nan=True).encode()
    files["kavsir_bboxes.json"] = text
    return Case("kvasir-seg", f"json {what}", files, expect)


def test_fuzz_kvasir_box_json(child, tmp_path):
    assert fuzz(child, tmp_path / "case", _json_cases(), 60) >= MIN_INPUTS


@functools.cache
def _folder_base() -> dict[str, bytes]:
    return {name: encode(_rgb(i), ".jpg") for i, name in enumerate(
        ("informative/a_1.jpg", "non-informative/a_2.jpg", "informative/b_1.jpg"))}


_LABELS = "image,video,label\ninformative/a_1.jpg,a,informative\n" \
          "non-informative/a_2.jpg,a,non-informative\ninformative/b_1.jpg,b,informative\n"
_SEQUENCES = _tiff_base()["s.csv"].decode()


@st.composite
def _csv_cases(draw: st.DrawFn) -> Case:
    """labels.csv (frames app) or the CVC-ClinicDB sequence CSV, mutated."""
    dataset = draw(st.sampled_from(("folder", "cvc-clinicdb")))
    files, name, text = ((dict(_folder_base()), "labels.csv", _LABELS) if dataset == "folder"
                         else (dict(_tiff_base()), "s.csv", _SEQUENCES))
    kind = draw(st.sampled_from(("truncate", "flip", "cell", "drop column", "random")))
    lines = [line.split(",") for line in text.splitlines()]
    expect = "either"
    if kind in DAMAGES:
        what, data = draw(damaged(text.encode(), kind, random_size=(1, 300)))
    else:
        column = draw(st.integers(0, len(lines[0]) - 1))
        if kind == "cell":
            row = draw(st.integers(0, len(lines) - 1))
            value = draw(st.sampled_from(("", "x", "../a_1.jpg", "/etc/passwd", '"', "\x00",
                                          "informative", "1", "a,b", "é")))
            lines[row][column] = value
            what = f"row {row} column {column} = {value!r}"
        else:
            for line in lines:
                del line[column]
            what, expect = f"column {column} dropped", "refuse"
        data = "\n".join(",".join(line) for line in lines).encode()
    files[name] = data
    return Case(dataset, f"{name} {what}", files, expect)


def test_fuzz_csv_metadata(child, tmp_path):
    assert fuzz(child, tmp_path / "case", _csv_cases(), 70) >= MIN_INPUTS
