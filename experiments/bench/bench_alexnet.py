"""AlexNet training and scoring throughput, ftjax vs the PyTorch reference, side by side.

    python -m experiments.bench.bench_alexnet                      # full network (all layers)
    python -m experiments.bench.bench_alexnet --tune_from=all      # every tuning depth

Training: both frameworks train the same network (Caffe variant by default) on the same random
float32 batch at the variant's input size, with SGD momentum 0.9 on the tuned layers only: ftjax
through ``ftjax.layerwise`` (only the trainable sub-tree is differentiated), PyTorch with
``requires_grad=False`` on the frozen layers. Scoring (inference): the same uint8 batch of 32x32
patches (candidates x their patches) to mean class probabilities per candidate, resizing to the
network input and the variant's preprocessing included: ftjax's ``Scorer``, PyTorch under
``torch.inference_mode()``. Calls alternate between the two so that other load on the machine
hits both alike; medians are reported, as images/s, the ratio ftjax / PyTorch against the goals
of issue 13, and per depth the fraction of the machine's matrix-product peak (measured in the
same run) each reaches. Prints the CPU; writes the figures as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

from experiments.bench.accelerator import forward_flops, step_flops
from experiments.bench.machine import alternating_ms, cpu_name, matmul_peak
from experiments.torch_reference import build, layer_module
from ftjax import layerwise, xla
from ftjax.models import AlexNet, input_size
from ftjax.models.preprocess import CAFFE_MEAN_BGR, TORCHVISION_MEAN, TORCHVISION_STD
from ftjax.scoring import Scorer

CLASSES = 2
PATCH = 32  # the stored patch side
K = 8  # patches per scored candidate (batch / K candidates per call)
# ftjax / PyTorch images/s the issue asks for: full-network training 1.2, every depth 1.1,
# scoring 1.0.
GOALS = {"conv1": 1.2, "scratch": 1.2, "scoring": 1.0}
GOAL_OTHER = 1.1


def _inputs(variant: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
    size = input_size(variant)
    x = np.random.default_rng(0).normal(0, 50, size=(batch, size, size, 3)).astype(np.float32)
    return x, np.arange(batch) % CLASSES


def jax_step(variant: str, batch: int, tune_from: str) -> tuple[object, tuple]:
    """The trainer's jitted step (buffers donated) and its arguments on a random batch."""
    x, y = _inputs(variant, batch)
    model = AlexNet(num_classes=CLASSES, variant=variant)
    key = jax.random.key(0)
    trunk = layerwise.init_params(None, "scratch", CLASSES, variant, key)
    params = layerwise.init_params(None if tune_from == "scratch" else trunk, tune_from, CLASSES,
                                   variant, key)
    trainable, frozen = layerwise.split(params, tune_from)
    optimizer = layerwise.make_optimizer(tune_from, steps_per_epoch=1000)
    step = xla.jit(layerwise.make_train_step(model, optimizer), donate_argnums=(0, 2))
    batch_ = {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}
    return step, (trainable, frozen, optimizer.init(trainable), batch_, key)


def jax_train(variant: str, batch: int, tune_from: str):
    """One ftjax training step closure, the state carried from call to call."""
    step, (trainable, frozen, opt_state, batch_, key) = jax_step(variant, batch, tune_from)
    state = [trainable, opt_state]

    def run():
        state[0], state[1], _ = step(state[0], frozen, state[1], batch_, key)
        jax.block_until_ready(state[0])

    return run


def _patches(batch: int) -> np.ndarray:
    """``batch // K`` candidates of K uint8 32x32 patches each."""
    if batch % K:
        raise SystemExit(f"--batch: must be a multiple of {K} (patches per candidate)")
    return np.random.default_rng(1).integers(0, 256, (batch // K, K, PATCH, PATCH, 3), np.uint8)


def jax_score(variant: str, batch: int):
    """The trainer's scorer on one chunk: uint8 patches -> mean probabilities per candidate."""
    patches = _patches(batch)
    model = AlexNet(num_classes=CLASSES, variant=variant)
    params = layerwise.init_params(None, "scratch", CLASSES, variant, jax.random.key(0))
    scorer = Scorer(model, params, chunk=len(patches))
    return lambda: scorer(patches)


def torch_train(variant: str, batch: int, tune_from: str):
    x, y = _inputs(variant, batch)
    net, where = build(variant, CLASSES)
    for layer in layerwise.frozen_layers(tune_from):
        layer_module(net, where[layer]).requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)
    xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous(), torch.from_numpy(y)
    net.train()

    def run():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()

    return run


def torch_score(variant: str, batch: int):
    """The same scoring in PyTorch: bilinear resize (half-pixel centres, as ``jax.image.resize``
    when enlarging), the variant's preprocessing, the network, mean softmax per candidate."""
    patches = _patches(batch)
    c, k = patches.shape[:2]
    net, _ = build(variant, CLASSES)
    net.eval()
    size = input_size(variant)
    if variant == "caffe":
        mean, scale, order = torch.tensor(CAFFE_MEAN_BGR), 1.0, [2, 1, 0]
    else:
        mean, scale, order = torch.tensor(TORCHVISION_MEAN) * 255, \
            1.0 / (255 * torch.tensor(TORCHVISION_STD)), [0, 1, 2]
    mean, scale = mean.view(1, 3, 1, 1), torch.as_tensor(scale).view(-1, 1, 1)
    raw = torch.from_numpy(patches.reshape(c * k, PATCH, PATCH, 3))

    def run():
        with torch.inference_mode():
            x = raw.permute(0, 3, 1, 2)[:, order].float()
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                align_corners=False)
            probs = torch.softmax(net(((x - mean) * scale).contiguous()), -1)
            return probs.view(c, k, -1).mean(1).numpy()

    return run


def jax_square(m: np.ndarray):
    """A closure computing ``m @ m`` in ftjax's compilation (for the matrix-product peak)."""
    x, dot = jnp.asarray(m), xla.jit(jnp.dot)
    return lambda: dot(x, x).block_until_ready()


def torch_square(m: np.ndarray):
    x = torch.from_numpy(m)
    return lambda: x @ x


def _goal(name: str) -> float:
    return GOALS.get(name, GOAL_OTHER)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians reported")
    ap.add_argument("--variant", default="caffe", choices=("caffe", "torchvision"))
    ap.add_argument("--tune_from", default="conv1",
                    help="a depth, a comma-separated list, or 'all' (fc8 ... conv1, scratch)")
    ap.add_argument("--no_score", action="store_true", help="skip the scoring comparison")
    ap.add_argument("--out", type=Path, default=Path("bench_alexnet.json"),
                    help="JSON file for the figures")
    a = ap.parse_args()
    retained = xla.retain_host_memory()  # as ftjax's command lines do; PyTorch gains from it too
    depths = layerwise.TUNE_FROM if a.tune_from == "all" else tuple(a.tune_from.split(","))
    unknown = sorted(set(depths) - set(layerwise.TUNE_FROM))
    if unknown:
        ap.error(f"--tune_from: unknown {unknown}; expected {', '.join(layerwise.TUNE_FROM)}")
    peak = matmul_peak({"ftjax": jax_square, "torch": torch_square})
    machine = max(peak.values())
    options = xla.compiler_options(jax.default_backend())
    print(f"{cpu_name()}; jax {jax.__version__} ({jax.default_backend()}, compiler options "
          f"{options}), torch {torch.__version__} ({torch.get_num_threads()} threads); host "
          f"memory {'retained' if retained else 'glibc default'} ({xla.MALLOC_ENV})")
    print(f"matrix-product peak: ftjax {peak['ftjax']:.0f} GFLOP/s, PyTorch {peak['torch']:.0f}; "
          f"machine {machine:.0f}")
    print(f"{a.variant}, float32, batch {a.batch}, {a.rounds} rounds x {a.steps} calls (medians); "
          f"images/s; of peak = GFLOP/s over {machine:.0f}")
    print(f"{'':14s}{'ftjax':>9s}{'pytorch':>9s}{'ratio':>7s}{'goal':>6s}  "
          f"{'ftjax of peak':>13s}{'torch of peak':>14s}  verdict")
    per_layer = forward_flops(a.variant, input_size(a.variant))
    rows = {}

    def report(name: str, fns: dict, flops: float | None) -> None:
        ms = alternating_ms(fns, a.rounds, a.steps)
        row = {f"{k}_images_per_s": a.batch / (v * 1e-3) for k, v in ms.items()}
        row["ratio"] = row["ftjax_images_per_s"] / row["torch_images_per_s"]
        row["goal"] = _goal(name)
        fraction = ""
        if flops is not None:
            row["gflop_per_image"] = flops / 1e9
            for k in ("ftjax", "torch"):
                row[f"{k}_of_peak"] = row[f"{k}_images_per_s"] * flops / 1e9 / machine
            fraction = f"{row['ftjax_of_peak']:13.1%}{row['torch_of_peak']:14.1%}"
        rows[name] = row
        mark = "met" if row["ratio"] >= row["goal"] else "MISSED"
        print(f"{name:14s}{row['ftjax_images_per_s']:9.1f}{row['torch_images_per_s']:9.1f}"
              f"{row['ratio']:7.2f}{row['goal']:6.1f}  {fraction:27s}  {mark}", flush=True)

    for depth in depths:
        report(depth, {"ftjax": jax_train(a.variant, a.batch, depth),
                       "torch": torch_train(a.variant, a.batch, depth)},
               step_flops(per_layer, "conv1" if depth == "scratch" else depth))
    if not a.no_score:
        report("scoring", {"ftjax": jax_score(a.variant, a.batch),
                           "torch": torch_score(a.variant, a.batch)}, sum(per_layer.values()))
    a.out.write_text(json.dumps({
        "cpu": cpu_name(), "jax": jax.__version__, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "compiler_options": options,
        "host_memory_retained": retained,
        "variant": a.variant, "batch": a.batch, "rounds": a.rounds, "steps": a.steps,
        "matmul_peak_gflops": peak, "rows": rows}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
