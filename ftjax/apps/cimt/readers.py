"""Reader for CUBS, the carotid ultrasound boundary study (Mendeley Data; PAPER.md, "Public data
a user can bring today"), `--data=cubs:DIR`.

  DIR/IMAGES/ID.tiff                        B-mode image (also `.tif`, `.png`, `.jpg`, `.jpeg`),
                                            8-bit grey or colour; ids such as `clin_0001_L`
  DIR/CF/ID_CF.txt                          one number: the calibration factor, mm per pixel
  DIR/SEGMENTATIONS/ANALYST/ID-LI.txt       lumen-intima profile, pixel coordinates (x right,
  DIR/SEGMENTATIONS/ANALYST/ID-MA.txt       y down) in one of two layouts: one point `x y` per
                                            line, or a row of all x then a row of all y
                                            (ANALYST defaults to `Manual-A1`)

`list_cubs` lists `CubsRecord`s without reading pixels, so the application can split by subject
first (the subject is the id without a trailing `_L`, `_R`, `-L` or `-R`: the left and right
carotids of one person never land on both sides of a split); `load` reads one record into a
`CubsImage`: uint8 grey [H, W], mm per pixel, and both interfaces resampled to one row per image
column (float, NaN where the analyst traced nothing).

The files come from the internet, so the reader trusts nothing in them. Decisions:
  - only TIFF, JPEG and PNG are decoded (Pillow's other plug-ins are never reached); the declared
    size is checked (at most MAX_PIXELS) before any pixel is decoded;
  - colour becomes grey as the rounded mean of R, G and B (B-mode is grey; some exports are RGB);
  - 16-bit, 32-bit and float images are refused, not scaled, and so are multi-page TIFFs (which
    page is the image is a guess), as in the colonoscopy readers;
  - text files are bounded (MAX_TEXT_BYTES) before they are read; numbers are plain decimals,
    scientific notation allowed, and must be finite;
  - the calibration factor must lie in [MIN_MM_PER_PIXEL, MAX_MM_PER_PIXEL] (B-mode pixels are
    tens of micrometres; a value outside is a wrong unit or a broken file);
  - a profile's layout is decided by its shape: more than 2 lines of exactly 2 numbers is `x y`
    per line; exactly 2 lines of n >= 3 numbers each is an x row then a y row; 2 lines of 2
    numbers would be 2 points either way, too few (a profile needs at least 3 points);
  - every point must lie inside the image (x in [0, W-1], y in [0, H-1]; 0-based pixels);
  - a profile is resampled at the integer columns from ceil(min x) to floor(max x) by linear
    interpolation of y over x (points sorted by x, the y of equal x averaged), and must cover
    at least 2 columns; LI and MA must share a column and MA must lie below LI (greater row) on
    average over the shared columns, else the two files are swapped or broken.
Every problem raises `CimtDataError` (a `ValueError`) with a one-line message that starts with
the file (or folder) and says what was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftjax.data.images import clip, decode, image_files, natural_key

FORMAT_VERSION = 1  # part of a cached data set's key: bump when what the reader returns changes
MAX_TEXT_BYTES = 1 << 22  # a calibration or profile file larger than this is not the dataset's
MIN_MM_PER_PIXEL, MAX_MM_PER_PIXEL = 0.001, 1.0  # bounds of a plausible calibration factor
MIN_POINTS = 3  # a profile needs at least this many points, in either layout
DEFAULT_ANALYST = "Manual-A1"
LAYOUT = ("IMAGES/ID.tiff, CF/ID_CF.txt, SEGMENTATIONS/ANALYST/ID-LI.txt and "
          "SEGMENTATIONS/ANALYST/ID-MA.txt")
_FORMATS = ("TIFF", "JPEG", "PNG")
_SUFFIXES = frozenset({".tiff", ".tif", ".png", ".jpg", ".jpeg"})
_SIDE = re.compile(r"[_-][LR]\Z", re.IGNORECASE)  # the suffix naming the left or right carotid
# A plain decimal number, or nan/inf (parsed so that the error can say "not finite"); no part
# can match the same characters two ways, so a long token fails in linear time.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf(?:inity)?)",
                     re.IGNORECASE | re.ASCII)
_SEPARATORS = re.compile(r"[\s,]+")
_PROFILE_LAYOUT = "expected 'x y' per line, or an x row then a y row"


class CimtDataError(ValueError):
    """A CIMT dataset file that cannot be used as it is (the message names the file)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever a file put into it


@dataclass(frozen=True)
class CubsRecord:
    """One CUBS image as listed, before any file is read; ``subject`` is the split unit."""

    id: str
    subject: str
    image: Path
    calibration: Path
    li: Path
    ma: Path


@dataclass(frozen=True, eq=False)
class CubsImage:
    """One CUBS image as loaded: grey pixels, the calibration, and both interfaces as one row per
    column (float, NaN where not traced) so the application can label pixels and measure in mm
    without knowing how the analyst sampled the curves."""

    id: str
    subject: str
    image: np.ndarray  # uint8 [H, W]
    mm_per_pixel: float
    li: np.ndarray  # float64 [W]: lumen-intima row per column, NaN where not traced
    ma: np.ndarray  # float64 [W]: media-adventitia row per column, NaN where not traced


def subject_of(image_id: str) -> str:
    """The subject of an image id: the id without its `_L`, `_R`, `-L` or `-R` side suffix."""
    return _SIDE.sub("", image_id) or image_id  # an id that is only a suffix is its own subject


# ---------------------------------------------------------------------------------- pixels


def read_image(path: str | Path) -> np.ndarray:
    """A B-mode image as uint8 grey [H, W] (colour averaged over R, G and B)."""
    rgb = decode(Path(path), "RGB", CimtDataError, _FORMATS)  # grey: three equal channels
    total = rgb.sum(axis=2, dtype=np.uint16)  # at most 765
    return ((total + 1) // 3).astype(np.uint8)  # the mean, rounded (never exactly .5)


# ------------------------------------------------------------------------------------ text


def _read_text(path: Path, what: str) -> str:
    """A text file's content, bounded before it is read (`what` says what the file is for)."""
    if not path.is_file():
        raise CimtDataError(f"{path}: missing {what}")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise CimtDataError(f"{path}: larger than {MAX_TEXT_BYTES} bytes; expected a {what}")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CimtDataError(f"{path}: not UTF-8 text ({err.reason})") from err


def _numbers(path: Path, line: int, text: str) -> list[float]:
    """The finite numbers of one line, separated by whitespace or commas."""
    values = []
    for token in _SEPARATORS.split(text):
        if not token:
            continue
        if not _NUMBER.fullmatch(token):
            raise CimtDataError(f"{path}: line {line}: {clip(token)!r} is not a number")
        value = float(token)
        if not math.isfinite(value):
            raise CimtDataError(f"{path}: line {line}: value {clip(token)!r} is not finite")
        values.append(value)
    return values


def read_calibration(path: str | Path) -> float:
    """The calibration factor of one image, in mm per pixel (one finite number, bounded)."""
    path = Path(path)
    text = _read_text(path, "calibration factor (mm per pixel)")
    values = [v for i, line in enumerate(text.splitlines(), 1) for v in _numbers(path, i, line)]
    if len(values) != 1:
        raise CimtDataError(
            f"{path}: {len(values)} numbers; expected one calibration factor (mm per pixel)"
        )
    value = values[0]
    if not MIN_MM_PER_PIXEL <= value <= MAX_MM_PER_PIXEL:
        raise CimtDataError(
            f"{path}: calibration factor {value!r} mm per pixel is outside "
            f"[{MIN_MM_PER_PIXEL}, {MAX_MM_PER_PIXEL}]"
        )
    return value


def _points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A profile file's (x, y) points in either layout, decided by the file's shape."""
    text = _read_text(path, f"profile ({_PROFILE_LAYOUT})")
    rows = [_numbers(path, i, line) for i, line in enumerate(text.splitlines(), 1)
            if line.strip()]
    rows = [row for row in rows if row]  # a line of separators only holds nothing
    counts = {len(row) for row in rows}
    if len(rows) > 2 and counts == {2}:  # one `x y` point per line
        xy = np.asarray(rows, dtype=np.float64)
        return xy[:, 0], xy[:, 1]
    if (len(rows) <= 2 and counts <= {2}) or (len(rows) == 2 and counts == {1}):
        points = len(rows[0]) if len(rows) == 2 else len(rows)
        raise CimtDataError(
            f"{path}: {points} point{'s' * (points != 1)} ({len(rows)} line"
            f"{'s' * (len(rows) != 1)}); too few: a profile needs at least {MIN_POINTS} points "
            f"({_PROFILE_LAYOUT})"
        )
    if len(rows) == 2 and len(counts) == 1:  # an x row then a y row, n >= 3 each
        return np.asarray(rows[0], dtype=np.float64), np.asarray(rows[1], dtype=np.float64)
    shape = ", ".join(str(len(row)) for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise CimtDataError(
        f"{path}: unknown profile layout ({_PROFILE_LAYOUT}); found {len(rows)} lines holding "
        f"{shape} numbers"
    )


def read_profile(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A traced interface as float64 [W]: the row at each column of an image of `shape` (H, W),
    NaN outside the traced columns, so that every profile has the image's columns whatever the
    analyst's sampling."""
    path = Path(path)
    height, width = shape
    x, y = _points(path)
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
    if outside.any():
        i = int(np.argmax(outside))
        raise CimtDataError(
            f"{path}: point {i + 1} ({x[i]:g}, {y[i]:g}) is outside the {width}x{height} image "
            f"(expected x in [0, {width - 1}], y in [0, {height - 1}])"
        )
    xs, where = np.unique(x, return_inverse=True)  # sorted; the y of equal x averaged
    ys = np.bincount(where, weights=y) / np.bincount(where)
    first, last = math.ceil(xs[0]), math.floor(xs[-1])
    if last - first + 1 < 2:
        raise CimtDataError(
            f"{path}: x spans [{xs[0]:g}, {xs[-1]:g}], fewer than 2 integer columns; expected a "
            "profile across the image"
        )
    out = np.full(width, np.nan)
    columns = np.arange(first, last + 1)
    out[first: last + 1] = np.interp(columns, xs, ys)
    return out


# --------------------------------------------------------------------------------- listing


def _images(folder: Path) -> dict[str, Path]:
    """The image files of IMAGES/ by id, at least one."""
    found = image_files(folder, _SUFFIXES, LAYOUT, CimtDataError)
    if not found:
        raise CimtDataError(
            f"{folder}: no images found (expected ID.tiff, .tif, .png or .jpg; layout {LAYOUT})"
        )
    return found


def _analyst_folder(root: Path, analyst: str) -> Path:
    """SEGMENTATIONS/ANALYST, or an error listing the analyst folders present."""
    if not analyst or analyst in (".", "..") or Path(analyst).name != analyst:
        raise ValueError(f"analyst {analyst!r} is not a folder name (e.g. {DEFAULT_ANALYST!r})")
    segmentations = root / "SEGMENTATIONS"
    folder = segmentations / analyst
    if not folder.is_dir():
        present = sorted((p.name for p in segmentations.iterdir()
                          if p.is_dir() and not p.name.startswith(".")), key=natural_key) \
            if segmentations.is_dir() else []
        raise CimtDataError(
            f"{folder}: missing analyst folder; analyst folders present: "
            + (", ".join(repr(clip(p, 60)) for p in present[:20]) if present else "none")
            + (", ..." if len(present) > 20 else "")
        )
    return folder


def list_cubs(root: str | Path, analyst: str = DEFAULT_ANALYST) -> list[CubsRecord]:
    """The images of a CUBS folder with their files, sorted naturally by id, without reading any
    (the application splits by subject first); a missing file is an error here, not mid-run."""
    root = Path(root)
    if not root.is_dir():
        raise CimtDataError(f"{root}: missing cubs folder (expected {LAYOUT})")
    images = _images(root / "IMAGES")
    traces = _analyst_folder(root, analyst)
    records = []
    for image_id in sorted(images, key=natural_key):
        calibration = root / "CF" / f"{image_id}_CF.txt"
        li, ma = traces / f"{image_id}-LI.txt", traces / f"{image_id}-MA.txt"
        for path, what in ((calibration, "calibration factor (mm per pixel)"),
                           (li, "lumen-intima (LI) profile"),
                           (ma, "media-adventitia (MA) profile")):
            if not path.is_file():
                raise CimtDataError(f"{path}: missing: every image needs its {what}")
        records.append(CubsRecord(image_id, subject_of(image_id), images[image_id],
                                  calibration, li, ma))
    return records


def load(record: CubsRecord) -> CubsImage:
    """One record's image, calibration and profiles, checked against each other."""
    image = read_image(record.image)
    mm_per_pixel = read_calibration(record.calibration)
    li = read_profile(record.li, image.shape)
    ma = read_profile(record.ma, image.shape)
    shared = ~np.isnan(li) & ~np.isnan(ma)
    if not shared.any():
        raise CimtDataError(
            f"{record.li}: the LI profile shares no column with the MA profile {record.ma}; "
            "expected both interfaces traced over the same stretch of artery"
        )
    li_mean, ma_mean = float(li[shared].mean()), float(ma[shared].mean())
    if not ma_mean > li_mean:
        raise CimtDataError(
            f"{record.li}: the MA profile {record.ma} lies above this LI profile (mean row "
            f"{ma_mean:.1f} vs {li_mean:.1f} over {int(shared.sum())} shared columns); expected "
            "MA below LI (greater row): are the files swapped?"
        )
    return CubsImage(record.id, record.subject, image, mm_per_pixel, li, ma)
