"""AlexNet training and inference throughput, ftjax vs the PyTorch reference, side by side.

    python -m experiments.bench.bench_alexnet                      # full network (all layers)
    python -m experiments.bench.bench_alexnet --tune_from=all      # every tuning depth

Both frameworks train the same network (Caffe variant by default) on the same random float32
batch at the variant's input size, with SGD momentum 0.9 on the tuned layers only: ftjax through
``ftjax.layerwise`` (only the trainable sub-tree is differentiated), PyTorch with
``requires_grad=False`` on the frozen layers. Rounds alternate between the two so that other load
on the machine hits both alike; medians are reported, as images/s and the ratio ftjax / PyTorch.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from experiments.torch_reference import build, layer_module
from ftjax import layerwise
from ftjax.models import AlexNet, input_size

CLASSES = 2


def _rate(fn, batch: int, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return batch * steps / (time.perf_counter() - t)


def interleaved(fns: dict, batch: int, steps: int, rounds: int) -> dict[str, float]:
    """Median images/s of each function over alternating rounds (after two warm-up calls)."""
    for fn in fns.values():
        fn()
        fn()
    rates = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            rates[k].append(_rate(fn, batch, steps))
    return {k: float(np.median(v)) for k, v in rates.items()}


def _inputs(variant: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
    size = input_size(variant)
    x = np.random.default_rng(0).normal(0, 50, size=(batch, size, size, 3)).astype(np.float32)
    return x, np.arange(batch) % CLASSES


def jax_train(variant: str, batch: int, tune_from: str):
    """One ftjax training step closure (jitted, buffers donated) at ``tune_from`` depth."""
    x, y = _inputs(variant, batch)
    model = AlexNet(num_classes=CLASSES, variant=variant)
    key = jax.random.key(0)
    trunk = layerwise.init_params(None, "scratch", CLASSES, variant, key)
    params = layerwise.init_params(None if tune_from == "scratch" else trunk, tune_from, CLASSES,
                                   variant, key)
    trainable, frozen = layerwise.split(params, tune_from)
    optimizer = layerwise.make_optimizer(tune_from, steps_per_epoch=1000)
    step = jax.jit(layerwise.make_train_step(model, optimizer), donate_argnums=(0, 2))
    batch_ = {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}
    state = [trainable, optimizer.init(trainable)]

    def run():
        state[0], state[1], m = step(state[0], frozen, state[1], batch_, key)
        jax.block_until_ready(state[0])

    return run


def jax_infer(variant: str, batch: int):
    x, _ = _inputs(variant, batch)
    model = AlexNet(num_classes=CLASSES, variant=variant)
    params = layerwise.init_params(None, "scratch", CLASSES, variant, jax.random.key(0))
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x))
    xj = jnp.asarray(x)
    return lambda: fwd(params, xj).block_until_ready()


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


def torch_infer(variant: str, batch: int):
    x, _ = _inputs(variant, batch)
    net, _ = build(variant, CLASSES)
    net.eval()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous()

    @torch.no_grad()
    def run():
        net(xt)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians reported")
    ap.add_argument("--variant", default="caffe", choices=("caffe", "torchvision"))
    ap.add_argument("--tune_from", default="conv1",
                    help="a depth, a comma-separated list, or 'all' (fc8 ... conv1, scratch)")
    ap.add_argument("--no_infer", action="store_true", help="skip the inference comparison")
    a = ap.parse_args()
    depths = layerwise.TUNE_FROM if a.tune_from == "all" else tuple(a.tune_from.split(","))
    print(f"backend={jax.default_backend()} devices={jax.device_count()} "
          f"torch_threads={torch.get_num_threads()} variant={a.variant} batch={a.batch} "
          f"float32, {a.rounds} rounds x {a.steps} steps (medians)")
    print(f"{'':12s}{'ftjax':>10s}{'pytorch':>10s}{'ratio':>8s}   images/s")
    rates = {}
    for depth in depths:
        r = interleaved({"jax": jax_train(a.variant, a.batch, depth),
                         "torch": torch_train(a.variant, a.batch, depth)},
                        a.batch, a.steps, a.rounds)
        rates[depth] = r
        print(f"{'train ' + depth:12s}{r['jax']:10.1f}{r['torch']:10.1f}"
              f"{r['jax'] / r['torch']:8.2f}", flush=True)
    if not a.no_infer:
        r = interleaved({"jax": jax_infer(a.variant, a.batch),
                         "torch": torch_infer(a.variant, a.batch)}, a.batch, a.steps, a.rounds)
        print(f"{'inference':12s}{r['jax']:10.1f}{r['torch']:10.1f}{r['jax'] / r['torch']:8.2f}")
    if "fc8" in rates and "conv1" in rates:
        for k in ("jax", "torch"):
            print(f"{k}: fc8 / conv1 speed-up {rates['fc8'][k] / rates['conv1'][k]:.2f}x")


if __name__ == "__main__":
    main()
