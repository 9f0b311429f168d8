"""The training loop: one for every application and every tuning depth.

Per the paper: cases split 80/20 into train/validation, negatives down-sampled each epoch, the
Caffe SGD of ``ftjax.layerwise`` on the tuned layers only, validation AUC every epoch, the best
snapshot kept, early stopping; then every test candidate scored by the mean over its patches.
Everything random derives from (seed, epoch, step), so a killed run resumes where it stopped and
ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import numpy as np
import optax

import ftjax
from ftjax import config as run_config
from ftjax import layerwise, parallel, scoring, weights
from ftjax.apps import Application, PatchSource, make_app, train_presets
from ftjax.checkpoint import Checkpoints
from ftjax.config import TrainConfig
from ftjax.data.splits import split_cases, subsample_cases
from ftjax.evaluate import _write_json, positive_auc, predict, test_metrics
from ftjax.input_pipeline import balanced_epoch, batches, prefetch
from ftjax.models import AlexNet


class TrainingError(RuntimeError):
    """A run that cannot go on (diverged loss, a workdir of another run, ...)."""


def make_config(app: str, preset: str = "smoke", **overrides: Any) -> TrainConfig:
    """The run's config: the trainer's ``preset``, the application's own values for it (its
    ``presets.TRAIN``), then explicit ``overrides`` (None values ignored)."""
    return run_config.make_config(app, preset, train_presets(app), **overrides)


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

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def record(self, **row: Any) -> None:
        if self.main:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def _check_workdir(config: TrainConfig, workdir: Path) -> None:
    """A workdir belongs to one configuration: resuming is allowed, mixing runs is not. A workdir
    whose run never reached a checkpoint (say, it stopped on bad --data) takes the new one."""
    path = workdir / "config.json"
    started = any(p.name.isdigit() for d in ("latest", "best")
                  for p in (workdir / "checkpoints" / d).glob("*"))
    if path.exists() and started:
        old = TrainConfig.from_json(path.read_text())
        if old.result_fields() != config.result_fields():
            diff = {k: (v, config.result_fields()[k]) for k, v in old.result_fields().items()
                    if config.result_fields()[k] != v}
            raise TrainingError(f"{workdir} holds a run with another configuration "
                                f"(was -> now: {diff}); use a new --workdir")
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        _write_json(path, json.loads(config.to_json()))


def _versions() -> dict[str, str]:
    return {"ftjax": ftjax.__version__, "jax": jax.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "backend": jax.default_backend(),
            "devices": str(jax.device_count()), "processes": str(jax.process_count())}


def train_and_evaluate(config: TrainConfig, workdir: str | Path, app: Application | None = None,
                       quiet: bool = False,
                       stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train per ``config`` in ``workdir`` (resuming if it holds a checkpoint of the same run),
    evaluate the best snapshot on the test split, write ``results.json`` and return it.

    ``stop_after_steps`` ends this invocation after that many global steps without evaluating,
    as a kill would (for tests and time-sliced jobs).
    """
    t_start = time.perf_counter()
    workdir = Path(workdir)
    _check_workdir(config, workdir)
    log = _Log(workdir, quiet)
    app = app or make_app(config.app, config.data, config.preset, config.seed)
    tag = " [SYNTHETIC data: a demonstration, not a medical result]" if app.synthetic else ""
    model = AlexNet(num_classes=len(app.classes), variant=config.arch)
    size = config.network_input_size

    # Weights first: an offline machine learns what to fetch before any data is generated.
    pretrained = load_pretrained(config)
    if pretrained is None:
        log("weights: random initialisation (nothing is pretrained)")

    # Cases -> train / validation patches (split by case, never by patch).
    cases = subsample_cases(list(app.cases("train")), config.train_fraction, config.seed)
    fit_cases, val_cases = split_cases(cases, config.val_fraction, config.seed)
    log(f"{app.name}{tag}: {len(fit_cases)} training, {len(val_cases)} validation cases")
    t = time.perf_counter()
    fit, val = app.training_patches(fit_cases), app.training_patches(val_cases)
    log(f"patches: {len(fit)} training ({int(np.sum(fit.labels != 0))} positive), {len(val)} "
        f"validation, built in {time.perf_counter() - t:.1f} s")

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
    cache = _cache_trunk(config, model, params, fit, val, prepare, log)
    start = layerwise.first_trainable_layer(config.tune_from) if cache else "conv1"
    strategy = parallel.make_strategy(config.parallel, lambda axis: layerwise.make_train_step(
        model, optimizer, start=start, prepare=None if cache else prepare, axis_name=axis))
    fit_inputs = cache[0] if cache else fit
    tuned = ", ".join(layerwise.trainable_layers(config.tune_from))
    log(f"tune_from={config.tune_from}: training {tuned}; {strategy.name} over "
        f"{jax.device_count()} device(s), {jax.process_count()} process(es); "
        f"{steps_per_epoch} steps/epoch of {config.batch_size}")

    # Resume.
    ckpt = Checkpoints(workdir)
    host_state = {"params": params, "opt_state": optimizer.init(trainable)}
    meta = {"step": 0, "best_auc": -1.0, "best_epoch": -1, "bad_epochs": 0, "epoch_done": 0}
    restored = ckpt.restore("latest", host_state)
    if restored is not None:
        host_state, meta = restored
        log(f"resuming from step {meta['step']} (epoch {meta['epoch_done']} done, best "
            f"validation AUC {meta['best_auc']:.4f})")
    trainable, frozen = layerwise.split(host_state["params"], config.tune_from)
    trainable, frozen, opt_state = strategy.put_state((trainable, frozen, host_state["opt_state"]))
    del host_state, params, pretrained

    rows = parallel.process_rows(config.batch_size)
    key = jax.random.key(config.seed)
    step = meta["step"]
    timings = {"train_seconds": 0.0, "validation_seconds": 0.0}
    stopped_early = False

    def save(best: bool) -> None:
        state = {"params": layerwise.merge(*strategy.local((trainable, frozen))),
                 "opt_state": strategy.local(opt_state)}
        ckpt.save(step, state, dict(meta, step=step), best=best)

    def load(idx: np.ndarray) -> dict:
        local = np.sort(idx[rows])
        return strategy.put_batch({"inputs": fit_inputs[local], "labels": fit.labels[local]})

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
            timings["train_seconds"] += time.perf_counter() - t_epoch

            t = time.perf_counter()
            params_now = layerwise.merge(*strategy.local((trainable, frozen)))
            if cache:
                probs = _head_probabilities(model, params_now, cache[1], start)
            else:
                probs = predict(model, params_now, lambda ix: val[ix][:, None], len(val), size,
                                config.eval_chunk * 8)
            auc = positive_auc(val.labels, probs)
            timings["validation_seconds"] += time.perf_counter() - t
            improved = auc > meta["best_auc"]
            meta.update(step=step, epoch_done=epoch + 1,
                        bad_epochs=0 if improved else meta["bad_epochs"] + 1)
            if improved:
                meta.update(best_auc=auc, best_epoch=epoch + 1)
            log(f"epoch {epoch + 1}/{config.epochs}: train loss {np.mean(losses):.4f}, "
                f"validation AUC {auc:.4f}{' (best)' if improved else ''}")
            log.record(kind="epoch", epoch=epoch + 1, step=step, train_loss=float(np.mean(losses)),
                       val_auc=auc, best=improved,
                       lr=float(layerwise.lr_schedule(steps_per_epoch, sgd)(step)))
            save(best=improved)
        ckpt.wait()

        # Test: the best snapshot, every candidate scored by the mean over its patches.
        best = ckpt.restore("best", {
            "params": layerwise.merge(*strategy.local((trainable, frozen))),
            "opt_state": strategy.local(opt_state)})
        if best is None:
            raise TrainingError("no epoch finished: nothing to evaluate")
        t = time.perf_counter()
        metrics = test_metrics(app, model, best[0]["params"], config, size,
                               workdir / "figures", log)
        timings["test_seconds"] = time.perf_counter() - t
    finally:
        ckpt.close()
    timings["total_seconds"] = time.perf_counter() - t_start
    results = {
        "app": app.name, "synthetic": app.synthetic,
        "note": "SYNTHETIC data: a demonstration of the pipeline, not a medical finding"
        if app.synthetic else "",
        "config": dataclasses.asdict(config), "best_epoch": best[1]["best_epoch"],
        "best_val_auc": best[1]["best_auc"], "epochs_run": meta["epoch_done"],
        "stopped_early": stopped_early, "steps": step, "test": metrics,
        "timings": {k: round(v, 3) for k, v in timings.items()}, "versions": _versions(),
    }
    if jax.process_index() == 0:
        _write_json(workdir / "results.json", results)
    log(f"test: {json.dumps(_headline(metrics))}{tag}")
    log(f"wrote {workdir / 'results.json'}")
    return results


def _cache_trunk(config: TrainConfig, model: AlexNet, params: Any, fit: PatchSource,
                 val: PatchSource, prepare: Callable, log: _Log) -> tuple | None:
    """Frozen-trunk features of every training and validation patch, computed once.

    With fc6..fc8 tuning the frozen layers see the same patches every epoch, so their output
    (in inference mode; the step re-applies Caffe's dropout of frozen fc layers) replaces them:
    each step then costs only the tuned layers. Skipped for deeper tuning, whose trunk outputs are
    large feature maps, and when the features would not fit in ``--cache_trunk_gib``.
    """
    frozen = layerwise.frozen_layers(config.tune_from)
    if not config.cache_trunk_gib or not frozen or frozen[-1] not in ("conv5", "fc6", "fc7"):
        return None
    size = config.network_input_size
    out = jax.eval_shape(lambda x: model.apply({"params": params}, x, stop=frozen[-1]),
                         jax.ShapeDtypeStruct((1, size, size, 3), np.float32))
    gib = (len(fit) + len(val)) * math.prod(out.shape[1:]) * 4 / 2**30
    if gib > config.cache_trunk_gib:
        log(f"not caching the frozen trunk: {gib:.1f} GiB > --cache_trunk_gib")
        return None
    trunk = jax.jit(lambda p, x: model.apply({"params": p}, prepare(x), stop=frozen[-1]))
    t = time.perf_counter()

    def features(source: PatchSource) -> np.ndarray:
        chunks = [np.asarray(trunk(params, source[np.arange(lo, min(len(source), lo + 256))]))
                  for lo in range(0, len(source), 256)]
        return np.concatenate(chunks) if chunks else np.zeros((0, *out.shape[1:]), np.float32)

    cached = features(fit), features(val)
    log(f"cached the frozen trunk ({', '.join(frozen)}) for {len(fit) + len(val)} patches: "
        f"{gib:.2f} GiB in {time.perf_counter() - t:.1f} s")
    return cached


def _head_probabilities(model: AlexNet, params: Any, features: np.ndarray,
                        start: str) -> np.ndarray:
    """Class probabilities from cached trunk features (the tuned layers only)."""
    head = _jit_head(model, start)
    return np.concatenate([np.asarray(head(params, features[lo:lo + 512]))
                           for lo in range(0, len(features), 512)])


@functools.lru_cache(maxsize=8)
def _jit_head(model: AlexNet, start: str) -> Callable:
    return jax.jit(lambda p, x: jax.nn.softmax(model.apply({"params": p}, x, start=start), -1))


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


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}


def run_cli(config: TrainConfig, workdir: str | Path) -> int:
    """The command line's error boundary: clear messages, exit status, no bare tracebacks."""
    try:
        train_and_evaluate(config, workdir)
    except (TrainingError, ValueError, FileNotFoundError, weights.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

