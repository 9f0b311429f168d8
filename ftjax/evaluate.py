"""python -m ftjax.evaluate --workdir=DIR: re-run the test of a run's best checkpoint (say, after
the test data or the application's metric changed), rewriting its predictions and the ``test``
entry of its results.json.

    python -m ftjax.evaluate --workdir=runs/pe_conv3
"""

from __future__ import annotations

import json

from absl import app, flags

from ftjax import cli

flags.DEFINE_string("workdir", None, "a training run's work directory")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    from ftjax import trainer  # noqa: PLC0415 (flags are parsed first: fast --help)

    return cli.error_boundary(
        lambda: print(json.dumps(trainer.evaluate_checkpoint(flags.FLAGS.workdir)["test"]
                                 ["headline"], indent=2)), trainer.ERRORS)


if __name__ == "__main__":
    app.run(main)
