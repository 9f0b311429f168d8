"""python -m ftjax.train: fine-tune (or train from scratch) AlexNet on one application.

    python -m ftjax.train --app=pe --tune_from=conv3
    python -m ftjax.train --app=pe --tune_from=scratch --preset=smoke --workdir=runs/pe_scratch

Without --data every app runs on its SYNTHETIC data set (a demonstration, not a medical result);
--data=NAME:PATH reads a public dataset. Rerunning the same command resumes from the last
checkpoint; SIGTERM (a preempted TPU VM or cloud GPU) saves a checkpoint at the next step and
exits with status 143. Results: <workdir>/results.json, predictions.csv/json, metrics.jsonl,
figures/. The flags are the fields of ``ftjax.config.TrainConfig`` (``--helpfull`` lists them).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from absl import flags

from ftjax import cli
from ftjax.config import TrainConfig

_FIELDS = cli.define_flags(TrainConfig)
flags.DEFINE_string("workdir", None, "run directory (default: runs/<app>_<tune_from>)")
flags.adopt_module_key_flags(cli)


def main(argv: Sequence[str]) -> int:
    cli.no_arguments(argv)
    values = cli.given(_FIELDS)
    if not values.get("app"):
        raise ValueError("--app is required (pe, polyp, frames, cimt, or module:function for "
                         "your own)")
    from ftjax import parallel, trainer  # noqa: PLC0415 (flags are parsed first: fast --help)

    # Keep jax's backend probing ("Unable to initialize backend 'tpu'") quiet.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    config = trainer.make_config(values.pop("app"), values.pop("preset", "smoke"), **values)
    parallel.initialize(config.distributed)
    result = trainer.train_and_evaluate(
        config, flags.FLAGS.workdir or f"runs/{config.app.replace(':', '_')}_{config.tune_from}")
    return cli.PREEMPTED if result.get("preempted_at_step") is not None else 0


if __name__ == "__main__":
    sys.exit(cli.run(main, retain_memory=True))
