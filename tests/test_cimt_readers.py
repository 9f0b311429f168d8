"""CUBS reader (carotid ultrasound boundary study), on small files written in the real formats
(tifffile and Pillow for the images, text calibration factors and profiles in both layouts), plus
fuzz families of mutated TIFF images, calibration texts and profile texts read in a child process
with a timeout (derandomized hypothesis).

Fuzz contract: every read ends in `CimtDataError` with a one-line message that starts with a path
in the case folder, or returns sane images (uint8 grey [H, W], a calibration within its bounds,
LI and MA rows per column inside the image, MA below LI); it is refused when the mutation leaves
no valid input, accepted when it leaves a valid one, answers within READ_TIMEOUT_S and writes
nothing.

Inputs per family (examples drawn, distinct inputs read; each family asserts >= MIN_INPUTS):
  CUBS TIFF images                 60 drawn, 51 distinct
  CUBS calibration factor texts    50 drawn, 43 distinct
  CUBS LI / MA profile texts       70 drawn, 70 distinct
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from fuzz_support import DAMAGES, damaged, encode, image_mutation, refused, tiff_lies, write
from hypothesis import strategies as st
from PIL import Image
from reading_child import MIN_INPUTS, Case, child_fixture, fuzz

from ftjax.apps.cimt.readers import (
    FORMAT_VERSION,
    MAX_MM_PER_PIXEL,
    MAX_TEXT_BYTES,
    MIN_MM_PER_PIXEL,
    CimtDataError,
    CubsImage,
    CubsRecord,
    list_cubs,
    load,
    read_calibration,
    read_image,
    read_profile,
    subject_of,
)

H, W = 20, 30
IDS = ("clin_0001_L", "clin_0001_R", "clin_0010_L")  # listed in this (natural) order
LI_POINTS = [(1.5, 8.0), (10.0, 9.0), (20.5, 8.5), (27.25, 10.0)]
MA_POINTS = [(x, y + 6.0) for x, y in LI_POINTS]
MM_PER_PIXEL = 0.06

# ----------------------------------------------------------------------------- file writers


def _grey(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth grey B-mode stand-in with a seed-dependent offset."""
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(20 + 10 * seed + 4 * x + 3 * y, 0, 255).astype(np.uint8)


def _profile(points: list[tuple[float, float]], layout: str = "xy", sep: str = " ",
             fmt: str = "{:.7e}") -> str:
    """Profile text: one `x y` point per line ("xy"), or an x row then a y row ("rows")."""
    if layout == "xy":
        return "".join(f"{fmt.format(x)}{sep}{fmt.format(y)}\n" for x, y in points)
    return "".join(sep.join(fmt.format(p[k]) for p in points) + "\n" for k in (0, 1))


def _cubs(root: Path, ids=IDS, analyst: str = "Manual-A1", layout: str = "xy") -> Path:
    """A CUBS folder: TIFF images, calibration factors and LI/MA profiles for `ids`."""
    for seed, image_id in enumerate(ids):
        write(root / "IMAGES" / f"{image_id}.tiff", _grey(seed))
        write(root / "CF" / f"{image_id}_CF.txt", f"{MM_PER_PIXEL}\n")
        for name, points in (("LI", LI_POINTS), ("MA", MA_POINTS)):
            write(root / "SEGMENTATIONS" / analyst / f"{image_id}-{name}.txt",
                   _profile(points, layout))
    return root


def _expected(points: list[tuple[float, float]], width: int = W) -> np.ndarray:
    """The profile resampled at integer columns, independently of the reader."""
    x, y = np.array(points).T
    out = np.full(width, np.nan)
    for c in range(width):
        if x.min() <= c <= x.max():
            out[c] = np.interp(c, x, y)
    return out


# ------------------------------------------------------------------------------ the layout


def test_list_and_load_a_cubs_folder(tmp_path):
    root = _cubs(tmp_path)
    records = list_cubs(root)
    assert [r.id for r in records] == list(IDS)
    assert records[0] == CubsRecord(
        "clin_0001_L", "clin_0001", root / "IMAGES" / "clin_0001_L.tiff",
        root / "CF" / "clin_0001_L_CF.txt",
        root / "SEGMENTATIONS" / "Manual-A1" / "clin_0001_L-LI.txt",
        root / "SEGMENTATIONS" / "Manual-A1" / "clin_0001_L-MA.txt")
    assert [r.subject for r in records] == ["clin_0001", "clin_0001", "clin_0010"]
    for seed, record in enumerate(records):
        image = load(record)
        assert isinstance(image, CubsImage)
        assert (image.id, image.subject) == (record.id, record.subject)
        assert image.image.dtype == np.uint8 and image.image.shape == (H, W)
        np.testing.assert_array_equal(image.image, _grey(seed))
        assert image.mm_per_pixel == MM_PER_PIXEL
        assert image.li.dtype == np.float64 and image.li.shape == (W,)
        np.testing.assert_allclose(image.li, _expected(LI_POINTS), equal_nan=True)
        np.testing.assert_allclose(image.ma, _expected(MA_POINTS), equal_nan=True)
    assert np.isnan(image.li[:2]).all() and np.isnan(image.li[28:]).all()
    assert not np.isnan(image.li[2:28]).any()
    assert FORMAT_VERSION == 1


def test_other_analyst_and_image_formats(tmp_path):
    """Another analyst's folder is a parameter; PNG and JPEG images are listed too."""
    root = _cubs(tmp_path, ids=("a_1-R", "a_2"), analyst="Manual-A2")
    (root / "IMAGES" / "a_1-R.tiff").rename(root / "IMAGES" / "a_1-R.png")
    write(root / "IMAGES" / "a_1-R.png", _grey(0))
    (root / "IMAGES" / "a_2.tiff").unlink()
    write(root / "IMAGES" / "a_2.jpg", _grey(1))
    write(root / "IMAGES" / "._a_3.tiff", b"macOS resource fork")  # hidden: skipped
    records = list_cubs(root, analyst="Manual-A2")
    assert [(r.id, r.subject, r.image.suffix) for r in records] == [
        ("a_1-R", "a_1", ".png"), ("a_2", "a_2", ".jpg")]
    np.testing.assert_array_equal(load(records[0]).image, _grey(0))
    assert np.abs(load(records[1]).image.astype(int) - _grey(1)).max() <= 8  # JPEG: lossy


@pytest.mark.parametrize("sep", [" ", "\t", ",", ", "])
@pytest.mark.parametrize("fmt", ["{:.7e}", "{:g}", "{!r}"])
def test_both_profile_layouts_give_the_same_profile(tmp_path, sep, fmt):
    expected = _expected(LI_POINTS)
    for layout in ("xy", "rows"):
        path = write(tmp_path / f"{layout}.txt", _profile(LI_POINTS, layout, sep, fmt))
        np.testing.assert_allclose(read_profile(path, (H, W)), expected, equal_nan=True)
    crlf = write(tmp_path / "crlf.txt", "\ufeff" + _profile(LI_POINTS, "rows").replace(
        "\n", "\r\n") + "\r\n  \r\n")  # a byte-order mark, CRLF and trailing blank lines
    np.testing.assert_allclose(read_profile(crlf, (H, W)), expected, equal_nan=True)


def test_interpolation_by_hand(tmp_path):
    points = [(2.0, 10.0), (4.0, 14.0), (7.5, 21.0)]
    nan = np.nan
    expected = [nan, nan, 10, 12, 14, 16, 18, 20, nan, nan]
    for name, pts in (("sorted", points), ("unsorted", points[::-1]),
                      ("duplicate x averaged", [(4.0, 13.0), *points[::2], (4.0, 15.0)])):
        path = write(tmp_path / "p.txt", _profile(pts))
        profile = read_profile(path, (24, 10))
        assert profile.dtype == np.float64 and profile.shape == (10,), name
        np.testing.assert_allclose(profile, expected, equal_nan=True, err_msg=name)


def test_profile_on_the_image_border(tmp_path):
    """Points on the first and last row and column are inside (0-based pixels)."""
    path = write(tmp_path / "p.txt", _profile([(0, 0), (W / 2, H - 1), (W - 1, H - 1)], "rows"))
    profile = read_profile(path, (H, W))
    assert not np.isnan(profile).any() and profile[0] == 0 and profile[-1] == H - 1


@pytest.mark.parametrize("image_id, subject", [
    ("clin_0001_L", "clin_0001"), ("clin_0001_R", "clin_0001"), ("clin_0001-l", "clin_0001"),
    ("clin_0001-R", "clin_0001"), ("clin_0001", "clin_0001"), ("clin_0001_LR", "clin_0001_LR"),
    ("clin_0001L", "clin_0001L"), ("clin_0001_X", "clin_0001_X"), ("_L", "_L"),
    ("L", "L"), ("a_L_b", "a_L_b"),
])
def test_subjects_from_side_suffixes(image_id, subject):
    assert subject_of(image_id) == subject


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_colour_becomes_the_rounded_mean_grey(tmp_path, mode):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    if mode == "RGB":
        path = write(tmp_path / "rgb.tiff", rgb)  # tifffile: photometric RGB
    else:
        path = tmp_path / "image.png"
        Image.fromarray(rgb).convert(mode).save(path)
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=float).mean(axis=2)
    if mode == "LA":
        expected = np.asarray(Image.open(path).convert("L"), dtype=float)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (H, W)
    np.testing.assert_array_equal(out, np.rint(expected).astype(np.uint8))


def test_calibration_factors(tmp_path):
    for text, value in (("0.06\n", 0.06), ("6.0000000e-02", 0.06), ("\ufeff 1e-3 \r\n\n", 0.001),
                        ("1.0", 1.0), ("+.5", 0.5)):
        assert read_calibration(write(tmp_path / "cf.txt", text)) == value


# ---------------------------------------------------------------------------- bad inputs

_refused = functools.partial(refused, CimtDataError)  # one line that names the file


LI = "SEGMENTATIONS/Manual-A1/clin_0001_R-LI.txt"
MA = "SEGMENTATIONS/Manual-A1/clin_0001_R-MA.txt"
CF = "CF/clin_0001_R_CF.txt"
IMAGE = "IMAGES/clin_0001_R.tiff"


def _file(name: str, content: bytes | str | np.ndarray):
    return lambda root: write(root / name, content)


def _unlink(name: str):
    return lambda root: (root / name).unlink()


def _rmtree(name: str):
    return lambda root: shutil.rmtree(root / name)


def _pages() -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, np.stack([_grey(0)] * 2))
    return out.getvalue()


_BAD_CF = {  # name -> (calibration text, message pattern)
    "CF zero": ("0.0", r"factor 0.0 mm per pixel is outside \[0.001, 1.0\]"),
    "CF negative": ("-0.06", "is outside"),
    "CF too large": ("2.5\n", "factor 2.5 mm per pixel is outside"),
    "CF in micrometres": ("60", "is outside"), "CF underflow": ("1e-400", "is outside"),
    "CF not a number": ("0.06 mm", "line 1: 'mm' is not a number"),
    "CF hexadecimal": ("0x1p-4", "is not a number"), "CF underscores": ("0.0_6", "is not a number"),
    "CF non-ASCII digits": ("\u0660.\u0660\u0666", "is not a number"),
    "CF NaN": ("nan", "'nan' is not finite"), "CF overflow": ("1e999", "not finite"),
    "CF empty": ("", "0 numbers; expected one calibration factor"),
    "CF two numbers": ("0.06\n0.07\n", "2 numbers; expected one"),
    "CF not UTF-8": (b"\xff\xfe0\x00.\x00", "not UTF-8"),
    "CF too large file": (b" " * (MAX_TEXT_BYTES + 1), f"larger than {MAX_TEXT_BYTES} bytes"),
}


BAD = {  # name -> (change to a valid folder, offending path, message pattern)
    "missing root": (_rmtree("."), ".", "missing cubs folder"),
    "missing IMAGES": (_rmtree("IMAGES"), "IMAGES", "missing folder"),
    "empty IMAGES": (lambda root: [p.unlink() for p in (root / "IMAGES").iterdir()], "IMAGES",
                     "no images found"),
    "two images, one id": (_file("IMAGES/clin_0001_R.png", _grey(0)), "IMAGES/clin_0001_R",
                           "two images with the stem 'clin_0001_R'"),
    "missing analyst folder": (_rmtree("SEGMENTATIONS/Manual-A1"), "SEGMENTATIONS/Manual-A1",
                               "missing analyst folder; analyst folders present: none"),
    "other analyst folders": (lambda root: (
        (root / "SEGMENTATIONS/Manual-A1").rename(root / "SEGMENTATIONS/Manual-A2"),
        (root / "SEGMENTATIONS/Manual-A10").mkdir()), "SEGMENTATIONS/Manual-A1",
        "missing analyst folder; analyst folders present: 'Manual-A2', 'Manual-A10'"),
    "missing CF": (_unlink(CF), CF, "missing: every image needs its calibration factor "
                   r"\(mm per pixel\)"),
    "missing CF folder": (_rmtree("CF"), "CF/clin_0001_L_CF.txt", "missing: every image"),
    "missing LI": (_unlink(LI), LI, "missing: every image needs its lumen-intima"),
    "missing MA": (_unlink(MA), MA, "missing: every image needs its media-adventitia"),
    **{name: (_file(CF, text), CF, pattern) for name, (text, pattern) in _BAD_CF.items()},
    "profile three columns": (_file(LI, "1 2 3\n4 5 6\n7 8 9\n"), LI,
                              "unknown profile layout .*expected 'x y' per line, or an x row "
                              r"then a y row\); found 3 lines holding 3, 3, 3 numbers"),
    "profile one row": (_file(LI, "1 2 3 4 5 6\n"), LI, "unknown profile layout"),
    "profile rows of different length": (_file(LI, "1 2 3 4\n5 6 7\n"), LI,
                                         "unknown profile layout"),
    "profile mixed lines": (_file(LI, "1 2\n3 4\n5\n6 7\n"), LI, "unknown profile layout"),
    "profile two points": (_file(LI, "1 5\n9 6\n"), LI,
                           "2 points .* too few: a profile needs at least 3 points"),
    "profile one point": (_file(LI, "1 5\n"), LI, "1 point .* too few"),
    "profile one point in rows": (_file(LI, "1\n5\n"), LI, "1 point .* too few"),
    "profile empty": (_file(LI, "\n \n"), LI, "0 points .* too few"),
    "profile point right of the image": (_file(LI, _profile([*LI_POINTS, (W - 0.5, 9.0)])), LI,
                                         rf"point 5 \(29.5, 9\) is outside the {W}x{H} image"),
    "profile point above the image": (_file(LI, _profile([(1, -1), *LI_POINTS[1:]], "rows")),
                                      LI, r"point 1 \(1, -1\) is outside"),
    "profile point below the image": (_file(MA, _profile([*MA_POINTS[:3], (27, H)])), MA,
                                      r"point 4 \(27, 20\) is outside"),
    "profile NaN": (_file(LI, "1 8\nnan 9\n20 9\n"), LI, "line 2: value 'nan' is not finite"),
    "profile infinity": (_file(MA, "1 8\n5 9\n20 -inf\n"), MA, "not finite"),
    "profile text": (_file(LI, "x y\n1 8\n5 9\n20 9\n"), LI, "line 1: 'x' is not a number"),
    "profile not UTF-8": (_file(LI, b"1 8\n5 9\n20 \xff\n"), LI, "not UTF-8"),
    "profile within one column": (_file(LI, "3.2 8\n3.5 9\n3.9 9\n"), LI,
                                  "fewer than 2 integer columns"),
    "profile on one column": (_file(LI, "3 8\n3.5 9\n3.9 9\n"), LI,
                              "fewer than 2 integer columns"),
    "MA above LI": (lambda root: (write(root / LI, _profile(MA_POINTS)),
                                  write(root / MA, _profile(LI_POINTS))), LI,
                    "MA profile .*MA.txt lies above this LI profile .*are the files swapped"),
    "MA on LI": (_file(MA, _profile(LI_POINTS)), LI, "lies above"),
    "no shared column": (lambda root: (write(root / LI, "1 8\n5 8\n9 8\n"),
                                       write(root / MA, "12 14\n20 14\n25 14\n")), LI,
                         "shares no column with the MA profile .*MA.txt"),
    "image 16-bit": (_file(IMAGE, np.zeros((H, W), np.uint16)), IMAGE, "mode 'I;16'"),
    "image float": (_file(IMAGE, np.zeros((H, W), np.float32)), IMAGE, "mode 'F'"),
    "image multi-page": (_file(IMAGE, _pages()), IMAGE, "2 pages"),
    "image truncated": (_file(IMAGE, encode(_grey(0), ".tiff")[:300]), IMAGE,
                        "unreadable image"),
    "image empty": (_file(IMAGE, b""), IMAGE, "unreadable image"),
    "image random bytes": (_file(IMAGE, np.random.default_rng(0).bytes(500)), IMAGE,
                           "unreadable image"),
    "image too small for the profiles": (_file(IMAGE, _grey(0, H, W - 5)), LI, "outside"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_inputs_name_the_file(tmp_path, name):
    change, where, pattern = BAD[name]
    root = _cubs(tmp_path / "cubs")
    change(root)
    _refused(lambda: [load(r) for r in list_cubs(root)], root / where, pattern)


def test_analyst_must_be_a_folder_name(tmp_path):
    for analyst in ("", ".", "..", "../CF", "a/b"):
        with pytest.raises(ValueError, match="is not a folder name"):
            list_cubs(_cubs(tmp_path), analyst=analyst)


def test_bounds_are_what_the_docstring_says():
    assert (MIN_MM_PER_PIXEL, MAX_MM_PER_PIXEL, MAX_TEXT_BYTES) == (0.001, 1.0, 1 << 22)


# ------------------------------------------------------------------------------------- fuzz


def _sane(image: CubsImage) -> bool:
    """What any accepted image must be, whatever the files held."""
    h, w = image.image.shape
    shared = ~np.isnan(image.li) & ~np.isnan(image.ma)
    rows = np.concatenate([image.li[~np.isnan(image.li)], image.ma[~np.isnan(image.ma)]])
    return bool(image.image.dtype == np.uint8 and image.li.shape == image.ma.shape == (w,)
                and image.li.dtype == image.ma.dtype == np.float64
                and MIN_MM_PER_PIXEL <= image.mm_per_pixel <= MAX_MM_PER_PIXEL
                and ((rows >= 0) & (rows <= h - 1)).all()
                and (~np.isnan(image.li)).sum() >= 2 and shared.any()
                and image.ma[shared].mean() > image.li[shared].mean())


def _read(kind: str, folder: Path) -> list[tuple[Any, ...]]:
    """What the child does: list a case folder and load every image; a summary per image."""
    out = []
    for record in list_cubs(folder):
        image = load(record)
        digest = hashlib.sha256(b"".join(a.tobytes() for a in (image.image, image.li, image.ma)))
        out.append((_sane(image), image.id, image.subject, image.mm_per_pixel,
                    digest.hexdigest()))
    return out


child = child_fixture(_read, CimtDataError)


@functools.cache
def _base() -> dict[str, bytes]:
    """Two images of one subject: a grey TIFF with LI/MA as `x y` lines, and a zlib-compressed
    RGB TIFF with them as an x row then a y row."""
    files = {}
    for image_id, layout in (("s_1_L", "xy"), ("s_1_R", "rows")):
        files[f"CF/{image_id}_CF.txt"] = f"{MM_PER_PIXEL}\n".encode()
        for name, points in (("LI", LI_POINTS), ("MA", MA_POINTS)):
            files[f"SEGMENTATIONS/Manual-A1/{image_id}-{name}.txt"] = _profile(
                points, layout).encode()
    files["IMAGES/s_1_L.tiff"] = encode(_grey(0), ".tiff")
    out = io.BytesIO()
    tifffile.imwrite(out, np.stack([_grey(1), _grey(2), _grey(3)], axis=-1), compression="zlib")
    files["IMAGES/s_1_R.tiff"] = out.getvalue()
    return files


def test_fuzz_base_is_valid(tmp_path):
    """The unmutated base reads as written (so the families mutate a valid input)."""
    for name, content in _base().items():
        write(tmp_path / name, content)
    images = [load(r) for r in list_cubs(tmp_path)]
    assert [(i.id, i.subject) for i in images] == [("s_1_L", "s_1"), ("s_1_R", "s_1")]
    assert all(_sane(i) for i in images)
    np.testing.assert_array_equal(images[1].image, _grey(2))  # the mean of 1, 2 and 3


@st.composite
def _image_cases(draw: st.DrawFn) -> Case:
    """One image of the base mutated (`image_mutation`); the image of another size is narrower
    than its profiles."""
    files = dict(_base())
    name = draw(st.sampled_from(sorted(n for n in files if n.startswith("IMAGES/"))))
    narrower = ("narrower than its profiles", encode(_grey(0, H, W - 4), ".tiff"))
    what, files[name], refuse = draw(image_mutation(files[name], tiff_lies(files[name]),
                                                    narrower))
    return Case("cubs", f"{name}: {what}", files, "refuse" if refuse else "either")


def test_fuzz_cubs_tiff_images(child, tmp_path):
    assert fuzz(child, tmp_path / "case", _image_cases(), 60) >= MIN_INPUTS


_CF_VALUES = {  # calibration text -> expect
    "0.06": "accept", "6e-2\r\n": "accept", " 0.001 ": "accept", "1": "accept",
    "\ufeff0.06": "accept", "0.0": "refuse", "-0.06": "refuse", "1.0000001": "refuse",
    "60": "refuse", "1e-400": "refuse", "1e400": "refuse", "nan": "refuse", "-inf": "refuse",
    "0x1p-4": "refuse", "0.0_6": "refuse", "0,06": "refuse", "0.06 0.06": "refuse",
    "\u0660.\u0660\u0666": "refuse", "": "refuse", "0." + "0" * 5000 + "6": "refuse",
    "0.06" + "0" * 5000: "accept", "\x00": "refuse", "0.06\n\x00": "refuse",
}


_TOKENS = ("", "x", "nan", "inf", "-1", "0", "1e400", "1e-400", "29", "29.0001", "19", "20",
           "1,5", "0x10", "\x00", "\u0660", "9" * 400, ".", "-", "e5", "1e", "1.5e+1")

_Mutate = Callable[[st.DrawFn, str, str, dict[str, bytes]], tuple[str, bytes, str]]


def _text_cases(prefix: str, mutations: tuple[str, ...], random_max: int,
                mutate: _Mutate) -> st.SearchStrategy[Case]:
    """One text of the base (a name starting with `prefix`) mutated: truncated, bits flipped,
    random (at most `random_max` bytes), or one of `mutations` by `mutate(draw, mutation, name,
    files)` -> (what, the new text, expect), which may change other files of the case too."""

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        files = dict(_base())
        name = draw(st.sampled_from(sorted(n for n in files if n.startswith(prefix))))
        kind = draw(st.sampled_from((*DAMAGES, *mutations)))
        expect = "either"
        if kind in DAMAGES:
            what, files[name] = draw(damaged(files[name], kind, random_size=(0, random_max)))
        else:
            what, files[name], expect = mutate(draw, kind, name, files)
        return Case("cubs", f"{name} {what}", files, expect)

    return cases()


def _calibration_value(draw: st.DrawFn, kind: str, name: str,
                       files: dict[str, bytes]) -> tuple[str, bytes, str]:
    """A chosen calibration text (`_CF_VALUES`)."""
    value = draw(st.sampled_from(sorted(_CF_VALUES)))
    return f"= {value[:20]!r}", value.encode(), _CF_VALUES[value]


def test_fuzz_cubs_calibration_texts(child, tmp_path):
    """Calibration texts truncated, bits flipped, random, or a chosen value."""
    cases = _text_cases("CF/", ("value", "value", "value"), 40, _calibration_value)
    assert fuzz(child, tmp_path / "case", cases, 50) >= MIN_INPUTS


def _profile_mutation(draw: st.DrawFn, kind: str, name: str,
                      files: dict[str, bytes]) -> tuple[str, bytes, str]:
    """A number replaced, a line dropped or doubled, the layout switched (still valid), or LI
    and MA swapped (refused)."""
    lines = files[name].decode().splitlines()
    which = "LI" if name.endswith("-LI.txt") else "MA"
    if kind == "token":
        row = draw(st.integers(0, len(lines) - 1))
        tokens = lines[row].split()
        column = draw(st.integers(0, len(tokens) - 1))
        tokens[column] = draw(st.sampled_from(_TOKENS))
        lines[row] = " ".join(tokens)
        return (f"line {row + 1} number {column + 1} = {tokens[column][:20]!r}",
                "\n".join(lines).encode(), "either")
    if kind in ("drop line", "double line"):
        row = draw(st.integers(0, len(lines) - 1))
        dropped = kind == "drop line"
        lines[row:row + 1] = [] if dropped else [lines[row]] * 2
        what = f"line {row + 1} {'dropped' if dropped else 'doubled'}"
        return what, "\n".join(lines).encode(), "either"
    if kind == "switch layout":
        points = LI_POINTS if which == "LI" else MA_POINTS
        layout = "xy" if "/s_1_R-" in name else "rows"
        sep = draw(st.sampled_from((" ", "\t", ",", " , ")))
        return f"as {layout} with {sep!r}", _profile(points, layout, sep).encode(), "accept"
    other = name.replace(f"-{which}.", "-MA." if which == "LI" else "-LI.")
    text, files[other] = files[other], files[name]
    return "LI and MA swapped", text, "refuse"


def test_fuzz_cubs_profile_texts(child, tmp_path):
    """LI and MA texts truncated, bits flipped, random, or `_profile_mutation`s."""
    cases = _text_cases("SEGMENTATIONS/", ("token", "drop line", "double line", "switch layout",
                                          "swap"), 300, _profile_mutation)
    assert fuzz(child, tmp_path / "case", cases, 70) >= MIN_INPUTS
