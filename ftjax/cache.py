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


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host: a temporary file or directory named with the
    pid of a writer that is gone is stale and may be removed (keep one cache per host)."""
    if os.name != "posix":  # signal 0 only asks after a process on POSIX: assume alive
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True
