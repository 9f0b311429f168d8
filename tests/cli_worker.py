"""Runs many command lines of one ftjax command in this one process (imports paid once), as the
fuzz tests need: ``python cli_worker.py MODULE < cases.json`` prints, per case, its exit status,
stderr, stdout and seconds as JSON. Flags are reset between cases."""

import contextlib
import importlib
import io
import json
import sys
import time

from absl import flags

from ftjax import cli


def main() -> None:
    module = importlib.import_module(sys.argv[1])
    out = []
    for argv in json.load(sys.stdin):
        flags.FLAGS.unparse_flags()
        err, std = io.StringIO(), io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            try:
                code = cli.run(module.main, [sys.argv[1], *argv])
            except SystemExit as e:  # --help and friends exit
                code = e.code
            except BaseException as e:  # a traceback would reach the user: report it
                code, err = -1, io.StringIO(f"UNCAUGHT {type(e).__name__}: {e}")
        out.append({"argv": argv, "code": code, "stderr": err.getvalue(),
                    "stdout": std.getvalue(), "seconds": time.perf_counter() - t})
    json.dump(out, sys.__stdout__)


if __name__ == "__main__":
    main()
