"""What each depth of a finished study sweep cost, against what its arithmetic costs.

    python -m experiments.bench.sweep_costs --outdir=study/pe [--seed=0] [--parts]

Per configuration (all the training data): the last epoch's training seconds (the first one
also compiles), its ratio to the ``conv1`` epoch, and the FLOP share of a step on cached trunk
features (the forward from ``layerwise.cached_start`` up, plus the tuned layers' gradients) of a
``conv1`` step, counted from the layer shapes; the goal is at most 1.15x that share for conv5 and
below, and fc8, fc7 and fc6 together at most 0.15 of a conv1 epoch. Also each run's trunk,
validation and test seconds, read from its ``results.json`` and ``metrics.jsonl``. ``--parts``
times one cached step per depth at the sweep's batch in two halves, the loss and its gradients
and the optimizer's update, with the update's memory traffic (parameters, gradients and momentum
read, parameters and momentum written): what a step costs that FLOPs do not count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
import optax

from experiments.bench.accelerator import forward_flops, step_flops
from experiments.bench.machine import cpu_name
from experiments.layerwise import CONFIGS
from ftjax import layerwise, xla
from ftjax.models.alexnet import LAYERS, AlexNet

SHALLOW = ("fc8", "fc7", "fc6")
GOAL_FACTOR, SHALLOW_GOAL = 1.15, 0.15


def cached_share(arch: str, size: int, tune_from: str) -> float:
    """FLOPs of a step from the cached trunk at ``tune_from`` over a full conv1 step's."""
    per_layer = forward_flops(arch, size)
    if tune_from == "scratch":
        return 1.0
    start = layerwise.cached_start(tune_from, arch)
    above = {k: v for k, v in per_layer.items() if LAYERS.index(k) >= LAYERS.index(start)}
    full = step_flops(per_layer, tune_from)  # the whole forward and the tuned layers' backward
    below = sum(v for k, v in per_layer.items() if k not in above)
    return (full - below) / step_flops(per_layer, "conv1")


def _timed(fn: Callable, args: tuple, repeats: int) -> float:
    """Seconds per call of a jitted ``fn`` (compiled and warmed up first)."""
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def step_parts(arch: str, size: int, tune_from: str, batch: int, repeats: int = 20) -> dict:
    """Milliseconds of one step on cached trunk features: gradients, then the update."""
    model = AlexNet(num_classes=2, variant=arch)
    params = layerwise.init_params(None, "scratch", 2, arch, jax.random.key(0), size=size)
    start = layerwise.cached_start(tune_from, arch)
    shape = (1, size, size, 3)
    if start != LAYERS[0]:
        stop = LAYERS[LAYERS.index(start) - 1]
        shape = jax.eval_shape(lambda x: model.apply({"params": params}, x, stop=stop),
                               jax.ShapeDtypeStruct(shape, np.float32)).shape
    trainable, frozen = layerwise.split(params, tune_from)
    optimizer = layerwise.make_optimizer(tune_from, steps_per_epoch=150)
    opt_state = optimizer.init(trainable)
    rng = np.random.default_rng(0)
    data = {"inputs": rng.normal(size=(batch, *shape[1:])).astype(np.float32),
            "labels": rng.integers(0, 2, batch).astype(np.int32)}
    grad_fn = xla.jit(jax.value_and_grad(layerwise.make_loss_fn(model, start=start),
                                         has_aux=True))
    grads = grad_fn(trainable, frozen, data, jax.random.key(1))[1]
    update = xla.jit(lambda g, s, p: optax.apply_updates(p, optimizer.update(g, s, p)[0]))
    full = xla.jit(layerwise.make_train_step(model, optimizer, start=start))
    key = jax.random.key(1)
    size_bytes = sum(x.size * 4 for x in jax.tree.leaves(trainable))
    t_update = _timed(update, (grads, opt_state, trainable), repeats)
    return {"step_ms": 1e3 * _timed(full, (trainable, frozen, opt_state, data, key), repeats),
            "gradients_ms": 1e3 * _timed(grad_fn, (trainable, frozen, data, key), repeats),
            "update_ms": 1e3 * t_update, "tuned_mb": size_bytes / 1e6,
            "update_gb_per_s": 5 * size_bytes / t_update / 1e9}


def _last_epoch(workdir: Path) -> float | None:
    seconds = None
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "epoch" and "train_seconds" in rec:
            seconds = float(rec["train_seconds"])
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outdir", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", action="store_true",
                        help="also time each depth's cached step in parts (gradients, update)")
    args = parser.parse_args(argv)
    runs = {}
    for config in CONFIGS:
        workdir = args.outdir / "runs" / f"{config}-f1-s{args.seed}"
        try:
            runs[config] = (workdir, json.loads((workdir / "results.json").read_text()))
        except (OSError, ValueError):
            continue
    if "conv1" not in runs:
        parser.error(f"{args.outdir}: no finished conv1 run of seed {args.seed} to compare with")
    cfg = runs["conv1"][1]["config"]
    size = cfg["input_size"] or (227 if cfg["arch"] == "caffe" else 224)
    conv1 = _last_epoch(runs["conv1"][0])
    print(f"{args.outdir}: {cfg['app']}, {cfg['arch']} at {size} px, batch {cfg['batch_size']}; "
          f"{cpu_name()}")
    print(f"{'config':8} {'epoch s':>8} {'x conv1':>8} {'FLOP share':>10} {'goal':>6} "
          f"{'trunk s':>8} {'valid s':>8} {'test s':>7} {'total s':>8}")
    rows, shallow = [], 0.0
    for config, (workdir, results) in runs.items():
        epoch = _last_epoch(workdir) or float("nan")
        ratio = epoch / conv1 if conv1 else float("nan")
        share = cached_share(cfg["arch"], size, config)
        goal = "" if config in SHALLOW or config in ("conv1", "scratch") else (
            "met" if ratio <= GOAL_FACTOR * share else "MISSED")
        if config in SHALLOW:
            shallow += ratio
        t = results["timings"]
        rows.append({"config": config, "epoch_seconds": epoch, "ratio": ratio, "share": share,
                     "goal": goal, **t})
        print(f"{config:8} {epoch:8.1f} {ratio:8.3f} {share:10.3f} {goal:>6} "
              f"{t.get('trunk_seconds', 0):8.1f} {t['validation_seconds']:8.1f} "
              f"{t.get('test_seconds', 0):7.1f} {t['total_seconds']:8.1f}")
    total = sum(r["total_seconds"] for r in rows)
    print(f"fc8 + fc7 + fc6 epochs: {shallow:.3f} of a conv1 epoch (goal <= {SHALLOW_GOAL}: "
          f"{'met' if shallow <= SHALLOW_GOAL else 'MISSED'}); the {len(rows)} runs: "
          f"{total / 60:.1f} min inside the trainer")
    if args.parts:
        print(f"one cached step at batch {cfg['batch_size']}, in parts:\n{'config':8} "
              f"{'step ms':>8} {'grads ms':>9} {'update ms':>10} {'tuned MB':>9} "
              f"{'update GB/s':>12}")
        for config in runs:
            r = step_parts(cfg["arch"], size, config, cfg["batch_size"])
            print(f"{config:8} {r['step_ms']:8.1f} {r['gradients_ms']:9.1f} "
                  f"{r['update_ms']:10.1f} {r['tuned_mb']:9.1f} {r['update_gb_per_s']:12.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
