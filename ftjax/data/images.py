"""8-bit images and names from files off the internet, read with nothing trusted: the shared
part of the colonoscopy and CUBS readers.

Only the formats named are decoded (Pillow's other plug-ins are never reached); the declared
size is checked before any pixel is decoded; 16-bit, 32-bit and float images are refused, not
scaled (no scaling could be trusted to match what the annotators saw); multi-page files are
refused (which page is the image is a guess). Pillow raises many exception types on broken
files (OSError, SyntaxError, struct.error, IndexError, ...), so anything it raises while
decoding means the file is unreadable.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

MAX_PIXELS = 2**26  # an image declaring more pixels is refused before it is decoded
MODES_8BIT = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})


def clip(text: str, limit: int = 200) -> str:
    """Text quoted from a file or a library, cut short (a hostile file can make it huge)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def natural_key(stem: str) -> tuple[Any, ...]:
    """Sort key putting "2" before "10" (datasets number their files)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", stem))


def decode(path: Path, mode: str, error: type[Exception], formats: tuple[str, ...]
           ) -> np.ndarray:
    """One 8-bit, single-page image in ``formats``, converted to Pillow ``mode``; every problem
    raises ``error`` with a one-line message that starts with the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=formats)
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS or width < 1 or height < 1:
                raise error(f"{path}: declared size {width}x{height} is outside "
                            f"1..{MAX_PIXELS} pixels")
            if getattr(image, "n_frames", 1) != 1:
                raise error(f"{path}: {image.n_frames} pages; expected a single-page image "
                            "(multi-page files are refused)")
            if image.mode not in MODES_8BIT:
                raise error(f"{path}: pixel mode {image.mode!r}; expected 8-bit grey, palette "
                            "or colour (16-bit, 32-bit and float images are refused)")
            return np.asarray(image.convert(mode), dtype=np.uint8)
    except error:
        raise
    except FileNotFoundError as err:
        raise error(f"{path}: missing image") from err
    except Exception as err:  # see the module docstring
        raise error(f"{path}: unreadable image (expected {'/'.join(formats)}): "
                    f"{clip(f'{type(err).__name__}: {err}')}") from err


def image_files(folder: Path, suffixes: frozenset[str], layout: str, error: type[Exception]
                ) -> dict[str, Path]:
    """The image files of ``folder`` by stem (hidden files such as macOS ``._N.tif`` skipped);
    a missing folder or two files of one stem raise ``error`` naming it."""
    if not folder.is_dir():
        raise error(f"{folder}: missing folder (expected {layout})")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if (path.name.startswith(".") or path.suffix.lower() not in suffixes
                or not path.is_file()):
            continue
        if path.stem in found:
            raise error(f"{path}: two images with the stem {path.stem!r} "
                        f"({found[path.stem].name})")
        found[path.stem] = path
    return found
