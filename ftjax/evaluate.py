"""python -m ftjax.evaluate --workdir=DIR: re-run the test of a run's best checkpoint (say, after
the test data or the application's metric changed), rewriting its predictions and the ``test``
entry of its results.json.

    python -m ftjax.evaluate --workdir=runs/pe_conv3
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from absl import flags

from ftjax import cli

flags.DEFINE_string("workdir", None, "a training run's work directory")
flags.adopt_module_key_flags(cli)


def main(argv: Sequence[str]) -> int:
    cli.no_arguments(argv)
    if not flags.FLAGS.workdir:
        raise ValueError("--workdir is required")
    from ftjax import trainer  # noqa: PLC0415 (flags are parsed first: fast --help)

    results = trainer.evaluate_checkpoint(flags.FLAGS.workdir)
    print(json.dumps(results["test"]["headline"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, retain_memory=True))
