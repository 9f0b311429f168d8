"""The training loop: one for every application and every tuning depth.

Per the paper: the application's training cases (its validation cases split off first, by the
data seed), negatives down-sampled each epoch, the Caffe SGD of ``ftjax.layerwise`` on the tuned
layers only, the validation AUC of the application's validation candidates every epoch, the best
snapshot kept, early stopping; then the application's test through a ``ftjax.scoring.Scorer`` of
the best snapshot, its per-item predictions written next to ``results.json``. Everything random
in training derives from (seed, epoch, step), so a killed run resumes where it stopped and ends
exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import numpy as np
import optax

import ftjax
from ftjax import autodepth, layerwise, parallel, scoring, trunk_cache, weights
from ftjax import config as run_config
from ftjax.apps import Application, make_app, train_presets
from ftjax.checkpoint import Checkpoints
from ftjax.config import TrainConfig
from ftjax.data.splits import reduce_cases
from ftjax.input_pipeline import balanced_epoch, batches, prefetch
from ftjax.metrics import roc_auc
from ftjax.models import AlexNet


class TrainingError(ValueError):
    """A run that cannot go on (diverged loss, a workdir of another run, ...)."""


def make_config(app: str, preset: str = "smoke", **overrides: Any) -> TrainConfig:
    """The run's config: the trainer's ``preset``, the application's own values for it (its
    ``presets.TRAIN``), then explicit ``overrides`` (None values ignored)."""
    return run_config.make_config(app, preset, train_presets(app), **overrides)


def application(config: TrainConfig, data: str | None = None, split: str | None = None
                ) -> Application:
    """The run's application on ``--data`` (default), testing on the cases ``config.split``
    names (``ftjax.data.splits.SplitPlan``)."""
    return make_app(config.app, config.data if data is None else data, config.preset,
                    config.data_seed, config.val_fraction, config.app_options,
                    config.split if split is None else split)


def tester_of(config: TrainConfig, app: Application) -> Application:
    """The application whose test the run reports: ``app``, or with ``--test_data`` the same
    application on every case of the external test set."""
    return application(config, config.test_data, "test") if config.test_data else app


def load_pretrained(config: TrainConfig) -> layerwise.Params | None:
    """``--weights``: ``imagenet`` (cached official weights), ``random``, or a file (.npz written
    by ftjax, or an official .caffemodel / .pth)."""
    if config.weights == "random":
        return None
    if config.weights == "imagenet":
        return weights.pretrained(config.arch)
    path = Path(config.weights)
    if path.suffix == ".caffemodel":
        return weights.convert_caffemodel(path)
    if path.suffix in (".pth", ".pt"):
        return weights.convert_torchvision(path)
    return weights.load(path)


def _check_input_size(model: AlexNet, params: Any, size: int) -> None:
    """Pretrained fc6 expects 6x6 pool5 maps; other input sizes only work from scratch."""
    shape = jax.eval_shape(lambda x: model.apply({"params": params}, x, stop="conv5"),
                           jax.ShapeDtypeStruct((1, size, size, 3), np.float32)).shape
    rows = params["fc6"]["kernel"].shape[0]
    if math.prod(shape[1:]) != rows:
        raise ValueError(f"input size {size} gives pool5 maps of {shape[1:]}, but fc6 takes "
                         f"{rows} inputs; use the variant's input size with pretrained weights")


class _Log:
    """Console lines (process 0 only) and a JSONL record of every metric in the workdir."""

    def __init__(self, workdir: Path, quiet: bool):
        self.main = jax.process_index() == 0
        self.quiet = quiet or not self.main
        self.path = workdir / "metrics.jsonl"
        self.started = False

    def start(self) -> None:
        """Records are written from here on (the workdir exists)."""
        self.started = True

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def record(self, **row: Any) -> None:
        if self.main and self.started:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def _check_workdir(config: TrainConfig, workdir: Path) -> None:
    """Before any work: the workdir can be written, and belongs to this configuration (resuming
    is allowed, mixing runs is not; a workdir whose run never reached a checkpoint takes the new
    one). Nothing is created here: a run that fails before training leaves nothing behind."""
    if workdir.exists() and not workdir.is_dir():
        raise TrainingError(f"--workdir={workdir}: exists and is not a directory")
    existing = next((p for p in (workdir, *workdir.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise TrainingError(f"--workdir={workdir}: {existing} is not writable")
    path = workdir / "config.json"
    started = any(p.name.isdigit() for d in ("latest", "best")
                  for p in (workdir / "checkpoints" / d).glob("*"))
    if path.exists() and started:
        old = TrainConfig.from_json(path.read_text(), source=str(path))
        if old.result_fields() != config.result_fields():
            diff = {k: (v, config.result_fields()[k]) for k, v in old.result_fields().items()
                    if config.result_fields()[k] != v}
            raise TrainingError(f"{workdir} holds a run with another configuration "
                                f"(was -> now: {diff}); use a new --workdir")


def _claim_workdir(config: TrainConfig, workdir: Path) -> None:
    """Create the workdir with its config.json, once the run is about to train."""
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        write_json(workdir / "config.json", json.loads(config.to_json()))


def _versions() -> dict[str, str]:
    return {"ftjax": ftjax.__version__, "jax": jax.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "backend": jax.default_backend(),
            "devices": str(jax.device_count()), "processes": str(jax.process_count())}


def train_and_evaluate(config: TrainConfig, workdir: str | Path, app: Application | None = None,
                       quiet: bool = False, stop_after_steps: int | None = None,
                       test: bool = True) -> dict[str, Any]:
    """Train per ``config`` in ``workdir`` (resuming if it holds a checkpoint of the same run),
    run the application's test on the best snapshot, write ``results.json`` and the predictions,
    and return the results.

    ``stop_after_steps`` ends this invocation after that many global steps without evaluating,
    as a kill would (for tests and time-sliced jobs). ``test=False`` skips the test (the results
    then hold no ``test``): ``--tune_from=auto`` tests only the depth it chooses.
    """
    t_start = time.perf_counter()
    workdir = Path(workdir)
    _check_workdir(config, workdir)
    if config.tune_from == "auto":
        return _train_auto(config, workdir, app, quiet, t_start)
    rows = parallel.process_rows(config.batch_size)  # checked before any work
    log = _Log(workdir, quiet)
    app = app or application(config)
    tester = tester_of(config, app)  # built first: a wrong --test_data fails before training
    synthetic = app.synthetic or tester.synthetic
    tag = " [SYNTHETIC data: a demonstration, not a medical result]" if synthetic else ""
    model = config.model(len(app.classes))
    size = config.network_input_size

    # Weights first: an offline machine learns what to fetch before any data is generated.
    pretrained = load_pretrained(config)
    if pretrained is None:
        log("weights: random initialisation (nothing is pretrained)")

    # Cases (split by the application, by the data seed) -> training patches, validation
    # candidates; a reduced training set removes whole training cases, never validation ones.
    t = time.perf_counter()
    all_fit = list(app.cases("train"))
    fit_cases, reached = reduce_cases(all_fit, app.units(all_fit), config.train_fraction,
                                      config.data_seed)
    val_cases = list(app.cases("validation"))
    fit, val = app.training_patches(fit_cases), app.validation_candidates(val_cases)
    positives = int(np.sum(np.asarray(val.labels) != 0))
    if positives in (0, len(val)):
        raise TrainingError(f"{app.name}: the {len(val)} validation candidates of "
                            f"{len(val_cases)} validation case(s) are all of one class, so the "
                            "validation AUC that selects the snapshot is undefined; use more "
                            "cases, a larger --val_fraction or another --data_seed")
    data = {"training_cases": len(fit_cases), "training_cases_available": len(all_fit),
            "train_fraction": config.train_fraction, "train_fraction_reached": reached,
            "reduction_unit": app.reduction_unit, "validation_cases": len(val_cases),
            "training_patches": len(fit), "validation_candidates": len(val),
            "validation_metric": app.validation_metric}
    log(f"{app.name}{tag}: {len(fit_cases)} of {len(all_fit)} training cases ({reached:.0%} of "
        f"the {app.reduction_unit}), {len(val_cases)} validation cases")
    log(f"patches: {len(fit)} training ({int(np.sum(fit.labels != 0))} positive), {len(val)} "
        f"validation candidates, built in {time.perf_counter() - t:.1f} s")

    # Parameters and optimizer.
    params = layerwise.init_params(pretrained, config.tune_from, len(app.classes), config.arch,
                                   jax.random.key(config.seed), size=size)
    _check_input_size(model, params, size)
    trainable, frozen = layerwise.split(params, config.tune_from)
    steps_per_epoch = len(batches(balanced_epoch(fit.labels, config.seed, 0), config.batch_size))
    sgd = layerwise.SGDConfig(base_lr=config.base_lr, fc8_lr_mult=config.fc8_lr_mult,
                              bias_lr_mult=config.bias_lr_mult, momentum=config.momentum,
                              weight_decay=config.weight_decay,
                              lr_decay_per_epoch=config.lr_decay_per_epoch)
    optimizer = layerwise.make_optimizer(config.tune_from, steps_per_epoch, sgd)
    prepare = functools.partial(scoring.prepare, variant=config.arch, size=size)
    cache = trunk_cache.build(model, params, config.tune_from, size, fit, val, prepare,
                              config.cache_trunk_gib, log)
    start = cache.start if cache else "conv1"
    strategy = parallel.make_strategy(config.parallel, lambda axis: layerwise.make_train_step(
        model, optimizer, start=start, prepare=None if cache else prepare, axis_name=axis))
    fit_inputs = cache.fit if cache else fit
    tuned = ", ".join(layerwise.trainable_layers(config.tune_from))
    log(f"tune_from={config.tune_from}: training {tuned}; {strategy.name} over "
        f"{jax.device_count()} device(s), {jax.process_count()} process(es); "
        f"{steps_per_epoch} steps/epoch of {config.batch_size}")

    # Resume.
    _claim_workdir(config, workdir)
    log.start()
    ckpt = Checkpoints(workdir)
    host_state = {"params": params, "opt_state": optimizer.init(trainable)}
    meta = {"step": 0, "best_auc": -1.0, "best_epoch": -1, "bad_epochs": 0, "epoch_done": 0}
    restored = ckpt.resume(host_state)
    if restored is not None:
        host_state, meta = restored
        log(f"resuming from step {meta['step']} (epoch {meta['epoch_done']} done, best "
            f"validation AUC {meta['best_auc']:.4f})")
    trainable, frozen = layerwise.split(host_state["params"], config.tune_from)
    trainable, frozen, opt_state = strategy.put_state((trainable, frozen, host_state["opt_state"]))
    del host_state, params, pretrained

    key = jax.random.key(config.seed)
    step = meta["step"]
    timings = {"train_seconds": 0.0, "validation_seconds": 0.0,
               "trunk_seconds": cache.seconds if cache else 0.0}
    stopped_early = False

    def save(best: bool) -> None:
        state = {"params": layerwise.merge(*strategy.local((trainable, frozen))),
                 "opt_state": strategy.local(opt_state)}
        ckpt.save(step, state, dict(meta, step=step), best=best)

    def load(idx: np.ndarray) -> dict:
        local = np.sort(idx[rows])
        return strategy.put_batch({"inputs": fit_inputs[local], "labels": fit.labels[local]})

    preemption = _Preemption()
    try:
        for epoch in range(step // steps_per_epoch, config.epochs):
            if meta["bad_epochs"] >= config.patience:
                stopped_early = True
                break
            epoch_batches = batches(balanced_epoch(fit.labels, config.seed, epoch),
                                    config.batch_size)
            first = step - epoch * steps_per_epoch
            t_epoch, pending, losses = time.perf_counter(), [], []
            for i, batch in enumerate(prefetch(epoch_batches[first:], load), start=first):
                if stop_after_steps is not None and step >= stop_after_steps:
                    return {"stopped_at_step": step}
                trainable, opt_state, metrics = strategy.step(
                    trainable, frozen, opt_state, batch, jax.random.fold_in(key, step))
                step += 1
                pending.append(metrics)
                mid_save = config.checkpoint_every and step % config.checkpoint_every == 0 \
                    and i != steps_per_epoch - 1
                if len(pending) == config.log_every or i == steps_per_epoch - 1 or mid_save:
                    # Losses are checked before anything is saved: no diverged checkpoint.
                    losses += _flush(pending, log, step, epoch, i, steps_per_epoch, t_epoch,
                                     first, config)
                    pending = []
                if mid_save:
                    save(best=False)
                if preemption.requested and i != steps_per_epoch - 1:
                    if pending:
                        _flush(pending, log, step, epoch, i, steps_per_epoch, t_epoch, first,
                               config)
                    if not mid_save:
                        save(best=False)
                    return _preempted(ckpt, log, step)
            epoch_seconds = time.perf_counter() - t_epoch  # of the steps run by this process
            timings["train_seconds"] += epoch_seconds

            t = time.perf_counter()
            params_now = layerwise.merge(*strategy.local((trainable, frozen)))
            if cache:
                probs = cache.validation_probabilities(model, params_now)
            else:
                probs = scoring.Scorer(model, params_now, size=size,
                                       chunk=config.eval_chunk).score(val)
            auc = validation_auc(val.labels, probs)
            validation_seconds = time.perf_counter() - t
            timings["validation_seconds"] += validation_seconds
            improved = auc > meta["best_auc"]
            meta.update(step=step, epoch_done=epoch + 1,
                        bad_epochs=0 if improved else meta["bad_epochs"] + 1)
            if improved:
                meta.update(best_auc=auc, best_epoch=epoch + 1)
            log(f"epoch {epoch + 1}/{config.epochs}: train loss {np.mean(losses):.4f}, "
                f"validation AUC {auc:.4f}{' (best)' if improved else ''}")
            log.record(kind="epoch", epoch=epoch + 1, step=step, train_loss=float(np.mean(losses)),
                       val_auc=auc, best=improved, train_seconds=epoch_seconds,
                       validation_seconds=validation_seconds,
                       lr=float(layerwise.lr_schedule(steps_per_epoch, sgd)(step)))
            if improved:
                write_validation(workdir, val.labels, probs)
            save(best=improved)
            if preemption.requested:
                return _preempted(ckpt, log, step)
        ckpt.wait()

        best = ckpt.restore("best", {
            "params": layerwise.merge(*strategy.local((trainable, frozen))),
            "opt_state": strategy.local(opt_state)})
        if best is None:
            raise TrainingError("no epoch finished: nothing to evaluate")
        t = time.perf_counter()
        tested = run_test(tester, model, best[0]["params"], config, workdir, log) \
            if test else None
        timings["test_seconds"] = time.perf_counter() - t
    finally:
        preemption.restore()
        ckpt.close()
    timings["total_seconds"] = time.perf_counter() - t_start
    results = {
        "app": app.name, "synthetic": synthetic,
        "note": "SYNTHETIC data: a demonstration of the pipeline, not a medical finding"
        if synthetic else "", "test_data": config.test_data or config.data,
        "config": dataclasses.asdict(config), "data": data, "best_epoch": best[1]["best_epoch"],
        "best_val_auc": best[1]["best_auc"], "epochs_run": meta["epoch_done"],
        "stopped_early": stopped_early, "steps": step,
        "timings": {k: round(v, 3) for k, v in timings.items()}, "versions": _versions(),
    }
    if tested is not None:
        results["test"] = tested
    if jax.process_index() == 0:
        write_json(workdir / "results.json", results)
    if tested is None:
        log(f"validation AUC {results['best_val_auc']:.4f} (epoch {results['best_epoch']}); "
            f"not tested{tag}")
        return results
    head = tested["headline"]
    log(f"test: {head['name']} {head['value']:.4f} [{head['low']:.4f}, {head['high']:.4f}]{tag}")
    log(f"wrote {workdir / 'results.json'} and the predictions beside it")
    return results


def _train_auto(config: TrainConfig, workdir: Path, app: Application | None, quiet: bool,
                t_start: float) -> dict[str, Any]:
    """``--tune_from=auto``: each depth of ``ftjax.autodepth``'s walk is a run of its own in
    ``workdir/auto/<depth>`` (resumable like any run, tested only if chosen); the chosen depth's
    best snapshot is then tested here, and the path taken and its cost go into the results."""
    log = _Log(workdir, quiet)
    app = app or application(config)
    tester = tester_of(config, app)
    runs: dict[str, dict[str, Any]] = {}

    def validate(depth: str) -> autodepth.Validation:
        start = config.weights
        if config.auto_chain and runs:
            previous = workdir / "auto" / list(runs)[-1]
            start = str(weights.save(best_checkpoint(previous)[1], previous / "trunk.npz"))
        log(f"auto: training {depth}" + (f" from {start}" if start != config.weights else ""))
        sub = dataclasses.replace(config, tune_from=depth, weights=start)
        runs[depth] = train_and_evaluate(sub, workdir / "auto" / depth, app, quiet, test=False)
        return read_validation(workdir / "auto" / depth)

    _claim_workdir(config, workdir)
    min_gain = None if config.auto_min_gain < 0 else config.auto_min_gain
    chosen, steps = autodepth.walk(validate, min_gain)
    for s in steps:
        gain = "" if s.gain is None else f", gain {s.gain:+.4f} vs noise {s.noise:.4f}"
        log(f"auto: {s.depth} validation AUC {s.auc:.4f}{gain}"
            f"{'' if s.went_on else ' -> stop'}")
    log(f"auto: chose tune_from={chosen} after {len(steps)} depth(s)")
    sub_config, params, meta = best_checkpoint(workdir / "auto" / chosen)
    t = time.perf_counter()
    tested = run_test(tester, sub_config.model(len(app.classes)), params, sub_config, workdir,
                      log)
    test_seconds = time.perf_counter() - t
    seconds = {d: r["timings"]["total_seconds"] for d, r in runs.items()}
    results = {
        **{k: v for k, v in runs[chosen].items() if k not in ("config", "timings")},
        "config": dataclasses.asdict(config),
        "auto": {"chosen": chosen, "from_previous_depth": config.auto_chain,
                 "noise": "fixed --auto_min_gain" if min_gain is not None else
                 "SD of the paired bootstrap AUC gain over the validation candidates",
                 "path": [dataclasses.asdict(s) for s in steps], "seconds": seconds},
        "test": tested,
        "timings": {"auto_seconds": round(sum(seconds.values()), 3),
                    "test_seconds": round(test_seconds, 3),
                    "total_seconds": round(time.perf_counter() - t_start, 3)},
    }
    if jax.process_index() == 0:
        write_json(workdir / "results.json", results)
    head = tested["headline"]
    log(f"test (tune_from=auto -> {chosen}): {head['name']} {head['value']:.4f} "
        f"[{head['low']:.4f}, {head['high']:.4f}]")
    return results


class _Preemption:
    """SIGTERM (a preempted TPU VM or cloud GPU) during training sets a flag instead of killing the
    process: the loop saves a checkpoint at the next step boundary and returns. Installed only in
    the main thread, only for the training loop."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def _preempted(ckpt: Checkpoints, log: _Log, step: int) -> dict[str, Any]:
    ckpt.wait()
    log(f"SIGTERM: saved the state at step {step}; rerun the same command to resume")
    log.record(kind="preempted", step=step)
    return {"preempted_at_step": step}


VALIDATION = "validation.npz"


def write_validation(workdir: Path, labels: np.ndarray, probabilities: np.ndarray) -> None:
    """The best epoch's validation labels and scores (``VALIDATION`` in the workdir, written
    atomically by process 0): what ``--tune_from=auto`` and the study's top-down walk compare."""
    if jax.process_index() != 0:
        return
    tmp = workdir / (VALIDATION + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, labels=np.asarray(labels) != 0,
                 scores=1.0 - np.asarray(probabilities, np.float64)[:, 0])
    tmp.replace(workdir / VALIDATION)


def read_validation(workdir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A run's best-epoch validation labels and scores (see :func:`write_validation`)."""
    path = Path(workdir) / VALIDATION
    try:
        with np.load(path, allow_pickle=False) as f:
            labels, scores = np.asarray(f["labels"], bool), np.asarray(f["scores"], np.float64)
    except (OSError, KeyError, ValueError) as e:
        raise FileNotFoundError(f"{path}: no readable validation scores ({e})") from e
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"{path}: labels {labels.shape} and scores {scores.shape} differ")
    return labels, scores


def validation_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AUC of "not class 0" (lesion, informative frame, interface) against class 0, scored by
    1 - p(class 0): the 2-class AUC, and the paper's interface-vs-background AUC for 3 classes."""
    return roc_auc(np.asarray(labels) != 0, 1.0 - probabilities[:, 0])


def run_test(app: Application, model: AlexNet, params: Any, config: TrainConfig, workdir: Path,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """The application's test through a Scorer of ``params``; writes the predictions files into
    ``workdir`` (process 0) and returns the JSON summary with the headline."""
    t = time.perf_counter()
    scorer = scoring.Scorer(model, params, size=config.network_input_size,
                            chunk=config.eval_chunk)
    result = app.test(scorer, workdir / "figures")
    seconds = time.perf_counter() - t
    if jax.process_index() == 0:
        result.predictions.write(workdir)
    log(f"test: {len(result.predictions)} items scored in {seconds:.1f} s")
    return {"headline": result.headline.as_dict(), **result.summary,
            "num_items": len(result.predictions), "scoring_seconds": round(seconds, 3)}


def best_checkpoint(workdir: str | Path) -> tuple[TrainConfig, Any, dict]:
    """A run's configuration, the parameters of its best checkpoint, and that checkpoint's meta
    (step, epoch, validation AUC)."""
    workdir = Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no such file; is {workdir} a training workdir?")
    config = TrainConfig.from_json(cfg_path.read_text(), source=str(cfg_path))
    ckpt = Checkpoints(workdir)
    try:
        restored = ckpt.restore("best", None)
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"{workdir}/checkpoints/best: no checkpoint yet (the run has not "
                                "finished an epoch)")
    return config, restored[0]["params"], restored[1]


def evaluate_checkpoint(workdir: str | Path) -> dict[str, Any]:
    """Re-run the test of a run's best checkpoint (finished or interrupted); rewrites the
    predictions and the ``test`` entry of ``results.json``."""
    workdir = Path(workdir)
    config, params, meta = best_checkpoint(workdir)
    app = application(config)
    model = config.model(len(app.classes))
    test = run_test(tester_of(config, app), model, params, config, workdir)
    results_path = workdir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.update({"test": test, "evaluated_checkpoint": meta})
    write_json(results_path, results)
    return results


def _flush(pending: list, log: _Log, step: int, epoch: int, i: int, steps_per_epoch: int,
           t_epoch: float, first: int, config: TrainConfig) -> list[float]:
    """Fetch the pending step metrics (the only host sync in the loop), stop on a bad loss,
    report progress with an ETA."""
    fetched = jax.device_get(pending)
    losses = [float(np.mean(m["loss"])) for m in fetched]
    bad = [j for j, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        at = step - len(losses) + bad[0] + 1
        raise TrainingError(f"loss became {losses[bad[0]]} at step {at} (epoch {epoch + 1}); "
                            "stopping. The last good checkpoint is kept; lower --base_lr?")
    done = i + 1 - first
    rate = done * config.batch_size / (time.perf_counter() - t_epoch)
    eta = (steps_per_epoch - i - 1 + (config.epochs - epoch - 1) * steps_per_epoch) \
        * config.batch_size / rate
    acc = float(np.mean([np.mean(m["accuracy"]) for m in fetched]))
    log(f"epoch {epoch + 1} step {i + 1}/{steps_per_epoch}: loss {losses[-1]:.4f} "
        f"acc {acc:.3f} | {rate:.1f} img/s | ETA {_hms(eta)}")
    log.record(kind="train", epoch=epoch + 1, step=step, loss=losses[-1], accuracy=acc,
               images_per_s=rate)
    return losses


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a temporary sibling renamed into place)."""
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
