"""Full-network AlexNet training and inference throughput: ftjax vs the PyTorch reference, one run.

    python experiments/bench/bench_alexnet.py [--batch 32] [--steps 5] [--variant caffe]

Both frameworks train all layers with SGD (momentum 0.9) on the same random batch, float32, at the
variant's input size; the script prints images/s for each and the ratio ftjax / PyTorch.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from ftjax.models import AlexNet, input_size
from ftjax.torch_reference import build


def _rate(fn, batch: int, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return batch * steps / (time.perf_counter() - t)


def interleaved(fns: dict, batch: int, steps: int, rounds: int) -> dict[str, float]:
    """Median images/s of each function, measured in alternating rounds so that load on the
    machine hits every contender alike."""
    for fn in fns.values():  # compile and warm up
        fn()
        fn()
    rates = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            rates[k].append(_rate(fn, batch, steps))
    return {k: float(np.median(v)) for k, v in rates.items()}


def jax_fns(variant: str, batch: int):
    """(train step, inference) closures for ftjax on one fixed random batch."""
    size = input_size(variant)
    model = AlexNet(num_classes=1000, variant=variant)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, 3)), jnp.float32)
    y = jnp.arange(batch) % 1000
    params = model.init(jax.random.key(0), x[:1])["params"]
    tx = optax.sgd(1e-3, momentum=0.9)
    opt = tx.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt, rng):
        def loss(p):
            logits = model.apply({"params": p}, x, train=True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        g = jax.grad(loss)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), opt

    infer = jax.jit(lambda p: model.apply({"params": p}, x))
    state = [params, opt]

    def train_once():
        state[0], state[1] = step(state[0], state[1], jax.random.key(1))
        jax.block_until_ready(state[0])

    return train_once, lambda: infer(state[0]).block_until_ready()


def torch_fns(variant: str, batch: int):
    """(train step, inference) closures for the PyTorch reference on one fixed random batch."""
    size = input_size(variant)
    net, _ = build(variant)
    x = torch.randn(batch, 3, size, size)
    y = torch.arange(batch) % 1000
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def train_once():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    def infer_once():
        with torch.no_grad():
            net.eval()
            net(x)
            net.train()

    return train_once, infer_once


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians reported")
    ap.add_argument("--variant", default="caffe", choices=("caffe", "torchvision"))
    a = ap.parse_args()
    print(f"backend={jax.default_backend()} devices={jax.device_count()} "
          f"torch_threads={torch.get_num_threads()} variant={a.variant} batch={a.batch}")
    (jtrain, jinfer), (ttrain, tinfer) = jax_fns(a.variant, a.batch), torch_fns(a.variant, a.batch)
    r = interleaved({"jt": jtrain, "tt": ttrain}, a.batch, a.steps, a.rounds)
    r |= interleaved({"ji": jinfer, "ti": tinfer}, a.batch, a.steps, a.rounds)
    jt, tt, ji, ti = r["jt"], r["tt"], r["ji"], r["ti"]
    print(f"{'':10s}{'ftjax':>10s}{'pytorch':>10s}{'ratio':>8s}   (images/s)")
    print(f"{'train':10s}{jt:10.1f}{tt:10.1f}{jt / tt:8.2f}")
    print(f"{'infer':10s}{ji:10.1f}{ti:10.1f}{ji / ti:8.2f}")


if __name__ == "__main__":
    main()
