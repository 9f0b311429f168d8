"""Scoring a trained network on patches and candidates; ``python -m ftjax.evaluate --workdir=DIR``
re-scores a run's best checkpoint on its test split and rewrites its results.

    python -m ftjax.evaluate --workdir=runs/pe_conv3
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import app as absl_app
from absl import flags

from ftjax import scoring
from ftjax.apps import Application, make_app
from ftjax.checkpoint import Checkpoints
from ftjax.config import TrainConfig
from ftjax.metrics import roc_auc
from ftjax.models import AlexNet


def predict(model: AlexNet, params: Any, fetch: Callable[[np.ndarray], np.ndarray], n: int,
            size: int, chunk: int) -> np.ndarray:
    """Mean class probabilities of ``n`` items, ``fetch(indices) -> uint8 [c, K, h, w, ch]``
    loading them a chunk at a time (the data never has to fit in memory at once)."""
    out = []
    for lo in range(0, n, chunk):
        patches = fetch(np.arange(lo, min(n, lo + chunk)))
        out.append(scoring.score_candidates(model, params, patches, size=size, chunk_size=chunk))
    if not out:
        return np.zeros((0, model.num_classes), np.float32)
    return np.concatenate(out)


def positive_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AUC of "not class 0" (lesion, informative frame, interface) against class 0, scored by
    1 - p(class 0): the 2-class AUC, and the paper's interface-vs-background AUC for 3 classes."""
    return roc_auc(np.asarray(labels) != 0, 1.0 - probabilities[:, 0])


def test_metrics(app: Application, model: AlexNet, params: Any, config: TrainConfig,
                 size: int, outdir: Path, log: Callable[[str], None] = print) -> dict:
    """Score every test candidate (mean over its K patches) and compute the app's metric."""
    t = time.perf_counter()
    candidates = app.test_candidates(list(app.cases("test")))
    probs = predict(model, params, candidates.patches, len(candidates), size, config.eval_chunk)
    seconds = time.perf_counter() - t
    log(f"scored {len(candidates)} test candidates in {seconds:.1f} s")
    outdir.mkdir(parents=True, exist_ok=True)
    metrics = dict(app.evaluate(candidates, probs, outdir))
    metrics["num_test_candidates"] = len(candidates)
    metrics["scoring_seconds"] = round(seconds, 3)
    return metrics


def evaluate_run(workdir: str | Path) -> dict:
    """Re-score the best checkpoint of a finished (or interrupted) run; updates results.json."""
    workdir = Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no such file; is {workdir} a training workdir?")
    config = TrainConfig.from_json(cfg_path.read_text())
    ckpt = Checkpoints(workdir)
    try:
        restored = ckpt.restore("best", None)
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"{workdir}/checkpoints/best: no checkpoint yet (the run has not "
                                "finished an epoch)")
    state, meta = restored
    app = make_app(config.app, config.data, config.preset, config.seed)
    model = AlexNet(num_classes=len(app.classes), variant=config.arch)
    metrics = test_metrics(app, model, state["params"], config, config.network_input_size,
                           workdir / "figures")
    results_path = workdir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.update({"test": metrics, "evaluated_checkpoint": meta})
    _write_json(results_path, results)
    return results


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    tmp.replace(path)


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if dataclasses.is_dataclass(x):
        return dataclasses.asdict(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise absl_app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS.workdir:
        raise absl_app.UsageError("--workdir is required")
    try:
        results = evaluate_run(flags.FLAGS.workdir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(results["test"], indent=2, default=_jsonable))
    return 0


if __name__ == "__main__":
    flags.DEFINE_string("workdir", None, "a training run's work directory")
    absl_app.run(main)
