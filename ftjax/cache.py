"""Where ftjax keeps what it downloads or generates once: ``$FTJAX_CACHE``, else ``~/.cache/ftjax``.

The lowest floor of the package: the weights (``weights.py``) and the generated patch data sets
(``data/patch_dataset.py``) both live under it, and neither needs to import the other for it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FTJAX_CACHE``, else ``~/.cache/ftjax``."""
    return Path(os.environ.get("FTJAX_CACHE") or Path.home() / ".cache" / "ftjax")
