"""python -m ftjax.train: fine-tune (or train from scratch) AlexNet on one application.

    python -m ftjax.train --app=pe --tune_from=conv3
    python -m ftjax.train --app=pe --tune_from=scratch --preset=smoke --workdir=runs/pe_scratch

Without --data every app runs on its SYNTHETIC data set (a demonstration, not a medical result);
--data=NAME:PATH reads a public dataset. Rerunning the same command resumes from the last
checkpoint. Results: <workdir>/results.json, metrics.jsonl, figures/.
"""

from __future__ import annotations

import dataclasses
import logging

from absl import app, flags

from ftjax.config import PARALLEL, PRESETS, TrainConfig, make_config
from ftjax.layerwise import TUNE_FROM
from ftjax.models.alexnet import VARIANTS

_DEFAULTS = TrainConfig(app="_")
flags.DEFINE_string("app", None, "application: pe | polyp | frames | cimt")
flags.DEFINE_enum("tune_from", _DEFAULTS.tune_from, list(TUNE_FROM),
                  "shallowest layer that trains (all above it train too); scratch = random init")
flags.DEFINE_string("data", "synthetic", "synthetic, or DATASET:PATH of a public dataset")
flags.DEFINE_enum("preset", "smoke", list(PRESETS),
                  "smoke: minutes on a laptop CPU; paper: the paper's patch counts")
flags.DEFINE_enum("arch", _DEFAULTS.arch, list(VARIANTS), "AlexNet variant")
flags.DEFINE_string("weights", _DEFAULTS.weights,
                    "imagenet (official weights, downloaded once) | random | a params file")
flags.DEFINE_string("workdir", None, "run directory (default runs/<app>_<tune_from>)")
flags.DEFINE_integer("epochs", None, "maximum epochs (default: from --preset)")
flags.DEFINE_integer("batch_size", None, "global batch size (default: from --preset)")
flags.DEFINE_integer("patience", None, "early stopping: epochs without a better validation AUC")
flags.DEFINE_float("train_fraction", None, "fraction of training cases kept (whole cases)")
flags.DEFINE_float("val_fraction", None, "fraction of training cases held out for validation")
flags.DEFINE_integer("seed", None, "seed of everything random")
flags.DEFINE_enum("parallel", _DEFAULTS.parallel, list(PARALLEL), "data-parallel step")
flags.DEFINE_bool("distributed", False, "multi-host: call jax.distributed.initialize() first")
flags.DEFINE_integer("input_size", None, "network input side (default: the variant's)")
flags.DEFINE_float("cache_trunk_gib", None, "fc6..fc8 tuning: cache the frozen trunk's features "
                   "when they fit in this many GiB (0: never)")
flags.DEFINE_float("base_lr", None, "learning rate of tuned layers (paper: 0.001)")
flags.DEFINE_float("fc8_lr_mult", None, "fc8 rate multiplier when fine-tuning (paper: 10)")
flags.DEFINE_float("bias_lr_mult", None, "bias rate multiplier (paper: 2)")
flags.DEFINE_float("momentum", None, "SGD momentum (paper: 0.9)")
flags.DEFINE_float("weight_decay", None, "weight decay on weights (paper: 5e-4)")
flags.DEFINE_float("lr_decay_per_epoch", None, "rate factor per epoch (paper: 0.95)")
flags.DEFINE_integer("log_every", None, "steps between progress lines")
flags.DEFINE_integer("checkpoint_every", None, "steps between mid-epoch checkpoints (0: epochs)")
flags.DEFINE_integer("eval_chunk", None, "candidates per scoring call")

_OVERRIDES = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("app", "preset"))


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f.app:
        raise app.UsageError("--app is required (pe, polyp, frames or cimt)")
    from ftjax import parallel, trainer  # noqa: PLC0415

    # absl runs at INFO: keep jax's backend probing ("Unable to initialize backend 'tpu'") quiet.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

    parallel.initialize(f.distributed)
    try:
        config = make_config(f.app, f.preset, **{k: getattr(f, k) for k in _OVERRIDES})
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    return trainer.run_cli(config, f.workdir or f"runs/{f.app}_{config.tune_from}")


if __name__ == "__main__":
    app.run(main)
