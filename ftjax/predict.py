"""python -m ftjax.predict: apply a trained run to new cases, no reference needed.

    python -m ftjax.predict --workdir=runs/pe_conv3 --data=cadpe:/data/new_scans --out=predicted

The run's best checkpoint scores every case of --data (the application's reader, reading images
only: reference masks are neither needed nor read): per case ``<case>.csv`` and ``<case>.json``
(one row per candidate: its position, size and score) and ``<case>.png`` (the case with its
scored candidates) in --out. The application, preset and network are the run's own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from ftjax import cli

flags.DEFINE_string("workdir", None, "a finished training run (its best checkpoint is used)")
flags.DEFINE_string("data", None, "the new cases: DATASET:PATH in the application's format")
flags.DEFINE_string("out", None, "output folder (default: <workdir>/predictions_<folder name>)")
flags.adopt_module_key_flags(cli)


def predict(workdir: str | Path, data: str, out: str | Path | None = None) -> list[Path]:
    """Score every case of ``data`` with the best checkpoint of ``workdir``; returns the CSVs."""
    from ftjax.apps import make_app  # noqa: PLC0415 (jax and the app once the flags are parsed)
    from ftjax.scoring import Scorer  # noqa: PLC0415
    from ftjax.trainer import best_checkpoint  # noqa: PLC0415

    workdir = Path(workdir)
    config, params, _ = best_checkpoint(workdir)
    application = make_app(config.app, data, config.preset, config.data_seed,
                           config.val_fraction, config.app_options)
    if not hasattr(application, "predict"):
        raise ValueError(f"--app={config.app} cannot predict on new cases (it has no predict)")
    model = config.model(len(application.classes))
    scorer = Scorer(model, params, size=config.network_input_size, chunk=config.eval_chunk)
    name = data.partition(":")[2].rstrip("/").rsplit("/", 1)[-1] or "synthetic"
    out = Path(out) if out else workdir / f"predictions_{name}"
    written = application.predict(scorer, out)
    tag = " (SYNTHETIC data: not a medical result)" if application.synthetic else ""
    print(f"wrote {len(written)} case(s) to {out}{tag}")
    return written


def main(argv: Sequence[str]) -> int:
    cli.no_arguments(argv)
    f = flags.FLAGS
    for name in ("workdir", "data"):
        if not getattr(f, name):
            raise ValueError(f"--{name} is required")
    predict(f.workdir, f.data, f.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, retain_memory=True))
