"""What every ``python -m ftjax.*`` command shares: flags generated from a config dataclass, and
one rule for errors: a bad flag, file or input ends in one line ``error: ...`` naming the flag or
file, exit status 1, no traceback (``--verbose`` shows it), and nothing half-written left behind.

    if __name__ == "__main__":
        sys.exit(cli.run(main))
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from absl import app, flags

# What a command reports as a one-line error: bad values and files (ValueError and its
# subclasses: WeightsError, PEDataError, PredictionsError, TrainingError, ...) and the OS's own
# (missing files, a read-only or full disk).
ERRORS = (ValueError, OSError)
PREEMPTED = 143  # exit status after SIGTERM (128 + 15), once the state is saved

flags.DEFINE_bool("verbose", False, "on an error, show the full traceback instead of one line")

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


def one_line(error: BaseException) -> str:
    """An exception as one line (library messages are one line already; OS and third-party
    ones may not be)."""
    return " ".join(str(error).split()) or type(error).__name__


def run(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None,
        errors: tuple[type[BaseException], ...] = ERRORS, retain_memory: bool = False) -> int:
    """Parse the flags and run ``main(remaining_argv)``; returns the exit status.

    ``retain_memory``: first set the process's host memory policy for XLA:CPU
    (:func:`ftjax.xla.retain_host_memory`), as the commands that run the network do.

    A flag that does not parse, an argument ``main`` rejects (it raises ``ValueError``) and any
    of ``errors`` become ``error: <one line>`` on stderr and status 1 (``--verbose``: the
    traceback). Unlike ``absl.app.run`` it returns instead of exiting, so tests can run many
    command lines in one process.
    """
    argv = list(sys.argv if argv is None else argv)
    try:
        app.define_help_flags()
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    try:
        if retain_memory:
            from ftjax import xla  # noqa: PLC0415 (imports jax: not for --help)

            xla.retain_host_memory()
        return int(main(rest) or 0)
    except errors as e:
        if flags.FLAGS.verbose:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1


def no_arguments(argv: Sequence[str]) -> None:
    """Commands take flags only: a stray word is most likely a typo'd flag."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {list(argv[1:])}: flags are written --name=value")
