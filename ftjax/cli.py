"""What every ``python -m ftjax.*`` command shares: flags generated from a config dataclass, and
one error boundary (a one-line error naming the file or flag, exit status 1, no traceback)."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from absl import flags

_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           bool: flags.DEFINE_bool}


def define_flags(cls: type, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """One absl flag per field of dataclass ``cls``: type, help text and choices come from the
    field (``metadata["help"]``, ``metadata["choices"]``). Every flag defaults to ``None`` so that
    presets can fill in what the user did not give; the help shows the field's own default.
    Returns the names defined."""
    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        choices = f.metadata.get("choices")
        if choices:
            flags.DEFINE_enum(f.name, None, list(choices), help_text)
        else:
            _DEFINE[hints[f.name]](f.name, None, help_text)
        names.append(f.name)
    return tuple(names)


def given(names: Iterable[str]) -> dict[str, Any]:
    """The values of the flags ``names`` that were set on the command line (or not None)."""
    return {n: getattr(flags.FLAGS, n) for n in names if getattr(flags.FLAGS, n) is not None}


def error_boundary(fn: Callable[[], Any], errors: tuple[type[BaseException], ...]) -> int:
    """Run ``fn``; an expected error becomes ``error: <message>`` on stderr and exit status 1."""
    try:
        fn()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
