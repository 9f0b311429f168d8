"""The fuzz tests' reading of hostile files: a child process that reads them (a hang becomes a
timeout and a crash an exit code, reported to the test instead of killing or stalling the test
session), the fuzz case, the contract every read is held to, and the derandomized driver of a
family of cases.

The contract (`read_case`): the child answers within READ_TIMEOUT_S and the case folder is left
unchanged; a read either ends in the reader's own error, with one line that starts with a path
in the case folder, or is accepted, and then `accepted` holds the result to the reader's own
checks; a case that must be refused is not accepted, and one that must be accepted is not
refused.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

READ_TIMEOUT_S = 5.0  # every read takes milliseconds; this only turns a hang into a failure
MIN_INPUTS = 30  # the distinct inputs each fuzz family must read, at least

# ------------------------------------------------------------------------ the reading child


class ReadingChild:
    """Runs ``serve_reads(conn, read, expected)`` in a spawned child (no fork of a threaded
    parent): one reply per ``read(kind, folder)``. A timeout or a crash restarts the child and is
    reported as ``("timeout" | "crash", message)``. ``read`` must be a module-level function
    (the child imports it by name); ``expected`` is the reader's own error, by name in
    ``self.expected``."""

    def __init__(self, read: Callable[[str, Path], Any], expected: type[BaseException],
                 timeout_s: float) -> None:
        self.serve = functools.partial(serve_reads, read=read, expected=expected)
        self.expected, self.timeout_s = expected.__name__, timeout_s
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=self.serve, args=(theirs,), daemon=True)
        self.process.start()
        theirs.close()
        assert self.conn.poll(120) and self.conn.recv() == "ready", "the reading child failed"

    def read(self, kind: str, folder: Path) -> tuple[str, Any]:
        self.conn.send((kind, str(folder)))
        if not self.conn.poll(self.timeout_s):
            self.close()
            self._start()
            return "timeout", f"no answer within {self.timeout_s} s"
        try:
            return self.conn.recv()
        except EOFError:
            self.process.join()
            exitcode = self.process.exitcode
            self._start()
            return "crash", f"the child died (exit code {exitcode})"

    def close(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


def serve_reads(conn: Any, read: Callable[[str, Path], Any],
                expected: type[BaseException]) -> None:
    """The child's loop, until the parent kills it: answer "ready", then for each (kind, folder)
    ``("ok", read(...))``, the expected error's name and message, or any other error with its
    traceback (a failure the test reports in full)."""
    conn.send("ready")
    while True:
        kind, folder = conn.recv()
        try:
            conn.send(("ok", read(kind, Path(folder))))
        except expected as err:
            conn.send((expected.__name__, str(err)))
        except BaseException as err:
            conn.send((type(err).__name__, "".join(traceback.format_exception(err))))


def child_fixture(read: Callable[[str, Path], Any], expected: type[BaseException]):
    """A module-scoped fixture: a ReadingChild answering ``read(kind, folder)`` (a module-level
    function), ``expected`` being the reader's own error."""

    @pytest.fixture(scope="module")
    def child():
        reader = ReadingChild(read, expected, READ_TIMEOUT_S)
        yield reader
        reader.close()

    return child


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: a reader must change none of them."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# ------------------------------------------------------------------------------ the contract


@dataclass(frozen=True)
class Case:
    """One input: a case folder's files, what was done to them and what must happen."""

    kind: str  # what the reading child reads the folder as
    what: str
    files: dict[str, bytes]  # path in the case folder -> content
    expect: Literal["refuse", "accept", "either"] = "either"

    def __repr__(self) -> str:  # hypothesis prints failing examples: the mutation, not bytes
        return f"Case({self.kind} {self.what}; expect={self.expect})"

    def digest(self) -> str:
        return hashlib.sha256(repr(sorted(self.files.items())).encode()).hexdigest()


def all_sane(case: Case, detail: list[tuple[Any, ...]]) -> None:
    """An accepted folder: at least one item read, each summary's first element saying it is
    sane."""
    assert detail and all(item[0] for item in detail), f"{case!r}: accepted {detail}"


def read_case(child: ReadingChild, folder: Path, case: Case,
              accepted: Callable[[Any, Any], None] = all_sane) -> tuple[str, Any]:
    """Write the case into a fresh folder, read it in the child and hold it to the contract;
    the outcome ("ok" or the error's name) and its detail (the result or the message)."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    before = snapshot(folder)
    outcome, detail = child.read(case.kind, folder)
    assert snapshot(folder) == before, f"{case!r}: the reader changed the case folder"
    assert outcome in ("ok", child.expected), f"{case!r}: {outcome}: {detail}"
    if outcome == "ok":
        assert case.expect != "refuse", f"{case!r}: accepted"
        accepted(case, detail)
    else:
        assert case.expect != "accept", f"{case!r}: refused a valid input: {detail}"
        assert "\n" not in detail and detail.startswith(str(folder)), f"{case!r}: {detail}"
    return outcome, detail


def fuzz(child: ReadingChild, folder: Path, cases: st.SearchStrategy[Case], examples: int,
         accepted: Callable[[Any, Any], None] = all_sane) -> int:
    """Run `examples` derandomized cases of one family through `read_case` in `folder`; the
    number of distinct inputs read."""
    seen: set[str] = set()

    @settings(derandomize=True, max_examples=examples, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate),  # a hang must not be shrunk for minutes
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases)
    def run(case: Case) -> None:
        seen.add(case.digest())
        read_case(child, folder, case, accepted)

    run()
    return len(seen)
