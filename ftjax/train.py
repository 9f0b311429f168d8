"""python -m ftjax.train: fine-tune (or train from scratch) AlexNet on one application.

    python -m ftjax.train --app=pe --tune_from=conv3
    python -m ftjax.train --app=pe --tune_from=scratch --preset=smoke --workdir=runs/pe_scratch

Without --data every app runs on its SYNTHETIC data set (a demonstration, not a medical result);
--data=NAME:PATH reads a public dataset. Rerunning the same command resumes from the last
checkpoint. Results: <workdir>/results.json, metrics.jsonl, figures/. The flags are the fields of
``ftjax.config.TrainConfig`` (``--helpfull`` lists them with their defaults).
"""

from __future__ import annotations

import logging

from absl import app, flags

from ftjax import cli
from ftjax.config import TrainConfig

_FIELDS = cli.define_flags(TrainConfig)
flags.adopt_module_key_flags(cli)
flags.DEFINE_string("workdir", None, "run directory (default: runs/<app>_<tune_from>)")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f.app:
        raise app.UsageError("--app is required (pe, or module:function for your own)")
    from ftjax import parallel, trainer  # noqa: PLC0415 (flags are parsed first: fast --help)

    # absl runs at INFO: keep jax's backend probing ("Unable to initialize backend 'tpu'") quiet.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

    values = cli.given(_FIELDS)
    parallel.initialize(bool(values.get("distributed")))
    try:
        config = trainer.make_config(values.pop("app"), values.pop("preset", "smoke"), **values)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    return trainer.run_cli(config, f.workdir or f"runs/{config.app}_{config.tune_from}")


if __name__ == "__main__":
    app.run(main)
