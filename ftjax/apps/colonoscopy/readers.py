"""Readers for public colonoscopy datasets (PAPER.md, "Public data a user can bring today").

  cvc-clinicdb  `ROOT/Original/N.tif` frames, `ROOT/Ground Truth/N.tif` masks (or `images/` and
                `masks/` with equal names). Frames come from 31 sequences but the dataset ships
                no mapping: pass a CSV with columns `frame,sequence` (frame = file stem), else
                the frames are split by image.
  etis-larib    as distributed, `ROOT/ETIS-LaribPolypDB/N.tif` frames and masks
                `ROOT/GroundTruth/pN.tif`; or flat, `ROOT/N.tif` and `ROOT/pN.tif`; or `images/`
                and `masks/` with equal names. No video information: split by image.
  kvasir-seg    `ROOT/images/ID.jpg`, `ROOT/masks/ID.jpg` and, if present,
                `ROOT/kavsir_bboxes.json` ({ID: {height, width, bbox: [{label, xmin, ymin, xmax,
                ymax}]}}: one entry per image, boxes inside the declared size, which must be
                the decoded size); no video information: split by image.
  asu-mayo      `ROOT/VIDEO/Frame/NAME` frames and `ROOT/VIDEO/GT/NAME` masks (equal stems);
                split by video.
  folder        frames app: `ROOT/informative/VIDEO_FRAME.jpg` and `ROOT/non-informative/...`
                (video = name before the last underscore), or `ROOT/labels.csv` with columns
                `image,video,label` (image relative to ROOT, label informative/non-informative).

`list_frames` lists `FrameRecord`s without reading pixels, so an application can split by video
first; `load_frame` decodes one record. Frames come back as uint8 RGB (grey copied into three
channels, alpha dropped, palettes and CMYK converted), masks as bool: values >= 128, or > 0 when
the mask holds only 0 and 1 (JPEG masks are not exactly binary, some masks store 0/1).

The files come from the internet, so the readers trust nothing in them. Decisions:
  - only TIFF, JPEG, PNG and BMP are decoded (Pillow's other plug-ins are never reached);
  - the declared size is checked (at most MAX_PIXELS) before any pixel is decoded;
  - 16-bit, 32-bit and float images are refused, not scaled: the datasets are 8-bit, and no
    scaling of a deeper file could be trusted to match what the annotators saw;
  - multi-page TIFFs (and animated images) are refused: which page is the frame is a guess;
  - CSV and JSON files are bounded (MAX_METADATA_BYTES) and checked field by field.
Every problem raises `ColonoscopyDataError` (a `ValueError`) with a one-line message that starts
with the file (or folder) and says what was expected.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ftjax.data.images import MAX_PIXELS, clip, decode, image_files, natural_key

FORMAT_VERSION = 1  # part of a cached data set's key: bump when what a reader returns changes
MAX_METADATA_BYTES = 1 << 26  # a CSV or JSON file larger than this is not the dataset's
SPLIT_BY_IMAGE = "split by image: no sequence mapping"  # what an app prints, see split_by_image
INFORMATIVE, NON_INFORMATIVE = "informative", "non-informative"
_FORMATS = ("TIFF", "JPEG", "PNG", "BMP")
_SUFFIXES = frozenset({".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp"})


class ColonoscopyDataError(ValueError):
    """A colonoscopy dataset file that cannot be used as it is (the message names the file)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever a file put into it


class Box(NamedTuple):
    """A bounding box in pixels, x to the right and y down, from a dataset's metadata."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass(frozen=True)
class FrameRecord:
    """One frame as listed, before any pixel is read.

    ``video`` is the split unit (None: unknown, split by image); ``mask`` is the polyp mask (None
    for the frames app); ``informative`` the frames app's label (None for polyp data); ``boxes``
    and ``size`` (height, width) what metadata declares (None: no metadata), checked on load.
    """

    frame_id: str
    video: str | None
    image: Path
    mask: Path | None = None
    informative: bool | None = None
    boxes: tuple[Box, ...] | None = None
    size: tuple[int, int] | None = None


def _decode(path: Path, mode: str) -> np.ndarray:
    return decode(path, mode, ColonoscopyDataError, _FORMATS)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image as uint8 RGB [H, W, 3] (grey copied into three channels, alpha dropped)."""
    return _decode(Path(path), "RGB")


def read_mask(path: str | Path) -> np.ndarray:
    """A mask as bool [H, W]: grey >= 128, or > 0 when it holds only 0 and 1."""
    grey = _decode(Path(path), "L")
    return grey > 0 if grey.max(initial=0) <= 1 else grey >= 128


def load_frame(record: FrameRecord) -> tuple[np.ndarray, np.ndarray | None]:
    """A record's frame (uint8 RGB [H, W, 3]) and mask (bool [H, W], or None without one)."""
    rgb = read_rgb(record.image)
    if record.size is not None and rgb.shape[:2] != record.size:
        raise ColonoscopyDataError(
            f"{record.image}: size {rgb.shape[0]}x{rgb.shape[1]} (height x width) differs from "
            f"the {record.size[0]}x{record.size[1]} its metadata declares"
        )
    if record.mask is None:
        return rgb, None
    mask = read_mask(record.mask)
    if mask.shape != rgb.shape[:2]:
        raise ColonoscopyDataError(
            f"{record.mask}: mask size {mask.shape[0]}x{mask.shape[1]} differs from frame "
            f"{record.image} size {rgb.shape[0]}x{rgb.shape[1]} (height x width)"
        )
    return rgb, mask


# --------------------------------------------------------------------------------- listing


def _images(folder: Path, layout: str) -> dict[str, Path]:
    return image_files(folder, _SUFFIXES, layout, ColonoscopyDataError)


def _pairs(frames: Path, masks: Path, prefix: str, layout: str,
           video: str | None = None) -> list[FrameRecord]:
    """Frames of one folder, each with the mask named `prefix` + its stem in `masks`."""
    flat = masks == frames  # flat layout: the masks are the prefixed stems among the frames
    found = _images(frames, layout)
    images = {s: p for s, p in found.items() if not (flat and prefix and s.startswith(prefix))}
    if not images:
        raise ColonoscopyDataError(f"{frames}: no frames found (expected {layout})")
    labels = found if flat else _images(masks, layout)
    records = []
    for stem in sorted(images, key=natural_key):
        mask = labels.get(prefix + stem)
        if mask is None:
            raise ColonoscopyDataError(
                f"{images[stem]}: frame without a mask (expected {masks / prefix}{stem}.*; "
                f"layout {layout})"
            )
        frame_id = stem if video is None else f"{video}/{stem}"
        records.append(FrameRecord(frame_id, video, images[stem], mask))
    return records


def _first_layout(root: Path, layouts: tuple[tuple[str, str, str], ...],
                  name: str) -> list[FrameRecord]:
    """Frames and masks in the first of `layouts` (frames folder, masks folder, mask prefix)
    whose frames folder exists."""
    described = " or ".join(f"{f}/{p}N + {m}/{p}N" if p else f"{f}/N + {m}/N"
                            for f, m, p in layouts)
    if not root.is_dir():
        raise ColonoscopyDataError(f"{root}: missing {name} folder (expected {described})")
    for frames, masks, prefix in layouts:
        if (root / frames).is_dir():
            return _pairs(root / frames, root / masks, prefix, f"{name}: {described}")
    raise ColonoscopyDataError(f"{root}: no frames found (expected {name}: {described})")


def _read_text(path: Path) -> str:
    """A metadata file's text, bounded before it is read."""
    if not path.is_file():
        raise ColonoscopyDataError(f"{path}: missing metadata file")
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise ColonoscopyDataError(f"{path}: larger than {MAX_METADATA_BYTES} bytes")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ColonoscopyDataError(f"{path}: not UTF-8 text ({err.reason})") from err


def _csv_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file that has at least `columns`, each value stripped."""
    try:
        reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ColonoscopyDataError(
                f"{path}: missing columns {missing}; expected a header with {list(columns)}"
            )
        reader.fieldnames = header
        rows = []
        for row in reader:
            values = {c: row.get(c) for c in columns}
            if any(v is None for v in values.values()):
                raise ColonoscopyDataError(
                    f"{path}: line {reader.line_num} has fewer than {len(header)} fields"
                )
            rows.append((reader.line_num, {c: v.strip() for c, v in values.items()}))
    except csv.Error as err:
        raise ColonoscopyDataError(f"{path}: not a CSV file ({clip(str(err))})") from err
    return rows


def _sequences(path: Path, records: list[FrameRecord]) -> list[FrameRecord]:
    """Records with their sequence from a `frame,sequence` CSV that maps every frame once."""
    known = {r.frame_id: r for r in records}
    sequence: dict[str, str] = {}
    for line, row in _csv_rows(path, ("frame", "sequence")):
        frame, seq = row["frame"], row["sequence"]
        if frame not in known:
            raise ColonoscopyDataError(f"{path}: line {line}: unknown frame {clip(frame)!r}")
        if not seq or frame in sequence:
            raise ColonoscopyDataError(
                f"{path}: line {line}: frame {frame!r} "
                + ("has an empty sequence" if not seq else "is listed twice")
            )
        sequence[frame] = seq
    unmapped = [f for f in known if f not in sequence]
    if unmapped:
        raise ColonoscopyDataError(
            f"{path}: no sequence for {len(unmapped)} frames (first {unmapped[0]!r})"
        )
    return [replace(r, video=sequence[r.frame_id]) for r in records]


def list_cvc_clinicdb(root: Path, sequences: Path | None = None) -> list[FrameRecord]:
    """CVC-ClinicDB frames and masks; sequences from the CSV if given, else None (by image)."""
    records = _first_layout(root, (("Original", "Ground Truth", ""), ("images", "masks", "")),
                            "cvc-clinicdb")
    return records if sequences is None else _sequences(Path(sequences), records)


def list_etis_larib(root: Path) -> list[FrameRecord]:
    """ETIS-Larib frames and masks (no video information: split by image)."""
    return _first_layout(root, (("ETIS-LaribPolypDB", "GroundTruth", "p"),
                                ("images", "masks", ""), (".", ".", "p")), "etis-larib")


def list_asu_mayo(root: Path) -> list[FrameRecord]:
    """ASU-Mayo frames and masks, one video per folder holding `Frame/` and `GT/`."""
    layout = "asu-mayo: VIDEO/Frame/NAME + VIDEO/GT/NAME"
    if not root.is_dir():
        raise ColonoscopyDataError(f"{root}: missing asu-mayo folder (expected {layout})")
    videos = sorted((p for p in root.iterdir() if (p / "Frame").is_dir()),
                    key=lambda p: natural_key(p.name))
    if not videos:
        raise ColonoscopyDataError(f"{root}: no frames found (expected {layout})")
    return [r for v in videos for r in _pairs(v / "Frame", v / "GT", "", layout, v.name)]


def _number(value: Any, path: Path, what: str) -> float:
    """A finite JSON number within float precision (booleans and text are not numbers; a huge
    integer would overflow float)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) < 2**53:
        raise ColonoscopyDataError(f"{path}: {what} is {clip(repr(value))}; expected a number")
    return float(value)


def _size(entry: dict[str, Any], path: Path, image_id: str) -> tuple[int, int]:
    """An entry's declared (height, width): whole numbers within MAX_PIXELS."""
    height, width = (_number(entry.get(k), path, f"{image_id!r} {k}") for k in ("height", "width"))
    if not (height.is_integer() and width.is_integer() and height >= 1 and width >= 1
            and height * width <= MAX_PIXELS):
        raise ColonoscopyDataError(
            f"{path}: {image_id!r} size {height}x{width}; expected whole pixels within "
            f"1..{MAX_PIXELS}"
        )
    return int(height), int(width)


def _box(item: Any, size: tuple[int, int], path: Path, image_id: str) -> Box:
    """One {label, xmin, ymin, xmax, ymax} box, non-empty and inside the image."""
    if not isinstance(item, dict) or not isinstance(item.get("label"), str):
        raise ColonoscopyDataError(
            f"{path}: {image_id!r} box {clip(repr(item))}; expected {{label, xmin, ymin, xmax, "
            "ymax}"
        )
    x0, y0, x1, y1 = (_number(item.get(k), path, f"{image_id!r} box {k}")
                      for k in ("xmin", "ymin", "xmax", "ymax"))
    height, width = size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ColonoscopyDataError(
            f"{path}: {image_id!r} box ({x0}, {y0}, {x1}, {y1}) is empty or outside the "
            f"{width}x{height} image"
        )
    return Box(clip(item["label"], 100), x0, y0, x1, y1)


def _kvasir_boxes(path: Path, records: list[FrameRecord]) -> list[FrameRecord]:
    """Records with the size and boxes `kavsir_bboxes.json` declares for every image."""
    try:
        data = json.loads(_read_text(path))
    except (ValueError, RecursionError) as err:  # ValueError: also too many digits in a number
        raise ColonoscopyDataError(f"{path}: not JSON ({clip(str(err))})") from err
    if not isinstance(data, dict):
        raise ColonoscopyDataError(f"{path}: expected a JSON object keyed by image id")
    known = {r.frame_id for r in records}
    unknown = sorted(set(data) - known)
    missing = [r.frame_id for r in records if r.frame_id not in data]
    if unknown or missing:
        raise ColonoscopyDataError(
            f"{path}: " + (f"unknown image id {clip(unknown[0])!r}" if unknown
                           else f"no entry for image {missing[0]!r}")
        )
    out = []
    for r in records:
        entry = data[r.frame_id]
        if not isinstance(entry, dict) or not isinstance(entry.get("bbox"), list):
            raise ColonoscopyDataError(
                f"{path}: {r.frame_id!r} entry; expected {{height, width, bbox: [...]}}"
            )
        size = _size(entry, path, r.frame_id)
        boxes = tuple(_box(b, size, path, r.frame_id) for b in entry["bbox"])
        out.append(replace(r, boxes=boxes, size=size))
    return out


def list_kvasir_seg(root: Path) -> list[FrameRecord]:
    """Kvasir-SEG frames and masks, with boxes when `kavsir_bboxes.json` is present."""
    records = _first_layout(root, (("images", "masks", ""),), "kvasir-seg")
    boxes = root / "kavsir_bboxes.json"
    return _kvasir_boxes(boxes, records) if boxes.exists() else records


def _labelled(records: Iterable[FrameRecord], where: Path, layout: str) -> list[FrameRecord]:
    """Frames-app records, refused when they hold fewer than both classes."""
    records = list(records)
    if not records:
        raise ColonoscopyDataError(f"{where}: no frames found (expected {layout})")
    if len({r.informative for r in records}) < 2:
        only = INFORMATIVE if records[0].informative else NON_INFORMATIVE
        raise ColonoscopyDataError(f"{where}: only {only} frames; expected both classes "
                                   f"({layout})")
    return records


def _inside(root: Path, name: str, path: Path, line: int) -> Path:
    """An image named in labels.csv: a relative path that stays inside ROOT and exists."""
    image = root / name
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or not image.is_file():
        raise ColonoscopyDataError(
            f"{path}: line {line}: image {clip(name)!r} is not a file inside {root}"
        )
    return image


def _labels_csv(root: Path, path: Path, layout: str) -> list[FrameRecord]:
    """Frames-app records from `labels.csv` (image, video, label)."""
    records, seen = [], set()
    for line, row in _csv_rows(path, ("image", "video", "label")):
        label, video = row["label"], row["video"]
        if label not in (INFORMATIVE, NON_INFORMATIVE) or not video:
            raise ColonoscopyDataError(
                f"{path}: line {line}: label {clip(label)!r}, video {clip(video)!r}; expected "
                f"{INFORMATIVE!r} or {NON_INFORMATIVE!r} and a video id"
            )
        image = _inside(root, row["image"], path, line)
        if image in seen:
            raise ColonoscopyDataError(f"{path}: line {line}: image {row['image']!r} twice")
        seen.add(image)
        frame_id = image.relative_to(root).with_suffix("").as_posix()
        records.append(FrameRecord(frame_id, video, image, informative=label == INFORMATIVE))
    return _labelled(records, path, layout)


def _class_folder(root: Path, name: str, layout: str) -> list[FrameRecord]:
    """Frames-app records of one class folder; video = the stem before its last underscore."""
    folder = root / name
    if not folder.is_dir():
        return []
    records = []
    for stem, image in sorted(_images(folder, layout).items(), key=lambda i: natural_key(i[0])):
        video = stem.rpartition("_")[0]
        if not video:
            raise ColonoscopyDataError(
                f"{image}: no video id in the name (expected {layout})"
            )
        records.append(FrameRecord(f"{name}/{stem}", video, image,
                                   informative=name == INFORMATIVE))
    return records


def list_folder(root: Path) -> list[FrameRecord]:
    """Frames-app records: `labels.csv` when present, else the two class folders."""
    layout = (f"folder: {INFORMATIVE}/VIDEO_FRAME.jpg + {NON_INFORMATIVE}/VIDEO_FRAME.jpg, or "
              "labels.csv with image,video,label")
    if not root.is_dir():
        raise ColonoscopyDataError(f"{root}: missing folder (expected {layout})")
    if (root / "labels.csv").exists():
        return _labels_csv(root, root / "labels.csv", layout)
    return _labelled((r for name in (INFORMATIVE, NON_INFORMATIVE)
                      for r in _class_folder(root, name, layout)), root, layout)


# -------------------------------------------------------------------------------- dispatch

_LISTERS: dict[str, Callable[[Path], list[FrameRecord]]] = {
    "cvc-clinicdb": list_cvc_clinicdb,
    "etis-larib": list_etis_larib,
    "kvasir-seg": list_kvasir_seg,
    "asu-mayo": list_asu_mayo,
    "folder": list_folder,
}
DATASETS = tuple(_LISTERS)  # the --data=NAME:DIR names


def list_frames(dataset: str, root: str | Path,
                sequences: str | Path | None = None) -> list[FrameRecord]:
    """The frames of a dataset folder, without reading pixels (split by video first).

    ``sequences``: a `frame,sequence` CSV, for cvc-clinicdb only (its frames carry no video)."""
    if dataset not in _LISTERS:
        raise ValueError(f"unknown colonoscopy dataset {dataset!r}; known: {list(DATASETS)}")
    if sequences is not None:
        if dataset != "cvc-clinicdb":
            raise ValueError(f"a sequence CSV is for cvc-clinicdb only, not {dataset!r}")
        return list_cvc_clinicdb(Path(root), Path(sequences))
    return _LISTERS[dataset](Path(root))


def split_by_image(records: Iterable[FrameRecord]) -> bool:
    """Whether some frame has no video, so the split is by image (print SPLIT_BY_IMAGE)."""
    return any(r.video is None for r in records)
