"""A child process that reads hostile files for the fuzz tests: a hang becomes a timeout and a
crash an exit code, reported to the test instead of killing or stalling the test session."""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ReadingChild:
    """Runs ``serve(conn)`` in a spawned child (no fork of a threaded parent); ``serve`` answers
    "ready", then one reply per request. A timeout or a crash restarts the child and is reported
    as ``("timeout" | "crash", message)``."""

    def __init__(self, serve: Callable[[Any], None], timeout_s: float) -> None:
        self.serve, self.timeout_s = serve, timeout_s
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
    """The child's loop: answer "ready", then for each (kind, folder) ``("ok", read(...))``, the
    expected error's name and message, or any other error with its traceback (a failure the test
    reports in full)."""
    conn.send("ready")
    while True:
        kind, folder = conn.recv()
        try:
            conn.send(("ok", read(kind, Path(folder))))
        except expected as err:
            conn.send((expected.__name__, str(err)))
        except BaseException as err:
            conn.send((type(err).__name__, "".join(traceback.format_exception(err))))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: a reader must change none of them."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}
