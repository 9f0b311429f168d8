"""Where a training step's time goes, ftjax against PyTorch, operation by operation.

    python -m experiments.bench.profile_ops [--variant=caffe] [--batch=32] [--out=ops.json]
    python -m experiments.bench.profile_ops --step=conv1   # inside ftjax's training step

For every block of the network (conv1 .. fc8, each with its ReLU, LRN and pooling), its forward
and its backward (the gradients of its parameters and, above conv1, of its input), in each
framework on the same shapes; then LRN and max pooling alone (conv1's output), the whole
optimizer update of all parameters (Caffe's SGD: ftjax's optax chain against torch.optim.SGD),
and the machine's matrix-product peak in both (a 2048 x 2048 float32 product). Calls alternate
between the frameworks over rounds and medians are reported, in milliseconds. Prints the CPU.

``--step=DEPTH`` instead traces ftjax's whole training step at that depth (``jax.profiler``,
XLA:CPU's per-operation trace events) and attributes each operation's time to its pass, layer
and operation from the compiled program's metadata: XLA fuses across the blocks, so an operation
can cost more (or less) inside the step than alone. XLA's convolutions and a few other library
calls emit no events: their time is the step's wall time less the traced time. The step runs
under glibc's default memory policy here (see ``main``), so it is slower than in training.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

from experiments.bench.bench_alexnet import jax_square, jax_step, torch_square
from experiments.bench.machine import alternating_ms, cpu_name, matmul_peak
from experiments.torch_reference import build
from ftjax import layerwise, xla
from ftjax.models import LAYERS, AlexNet, input_size
from ftjax.models.alexnet import lrn, max_pool

CLASSES = 2
# The torch modules of each ftjax block: (sequential, first index, end index).
BLOCKS = {
    "caffe": {"conv1": ("features", 0, 4), "conv2": ("features", 4, 8),
              "conv3": ("features", 8, 10), "conv4": ("features", 10, 12),
              "conv5": ("features", 12, 15), "fc6": ("classifier", 0, 2),
              "fc7": ("classifier", 3, 5), "fc8": ("classifier", 6, 7)},
    "torchvision": {"conv1": ("features", 0, 3), "conv2": ("features", 3, 6),
                    "conv3": ("features", 6, 8), "conv4": ("features", 8, 10),
                    "conv5": ("features", 10, 13), "fc6": ("classifier", 1, 3),
                    "fc7": ("classifier", 4, 6), "fc8": ("classifier", 6, 7)},
}


def medians(pairs: dict[str, tuple[Callable, Callable]], rounds: int,
            repeats: int) -> dict[str, tuple[float, float]]:
    """Median ms per call of each (ftjax, torch) pair, the two alternating round by round."""
    out = {}
    for name, (j, t) in pairs.items():
        ms = alternating_ms({"ftjax": j, "torch": t}, rounds, repeats)
        out[name] = (ms["ftjax"], ms["torch"])
    return out


def block_pairs(variant: str, batch: int) -> dict[str, tuple[Callable, Callable]]:
    """Per block, forward and backward closures in both frameworks on the block's input."""
    model = AlexNet(num_classes=CLASSES, variant=variant)
    params = layerwise.init_params(None, "scratch", CLASSES, variant, jax.random.key(0))
    net, _ = build(variant, CLASSES)
    net.eval()  # dropout off in both: the profile is of the arithmetic
    size = input_size(variant)
    act = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, 3)), jnp.float32)
    pairs = {}
    for layer in LAYERS:
        def apply(p, a, layer=layer):
            return model.apply({"params": {**params, layer: p}}, a, start=layer, stop=layer)

        fwd = xla.jit(apply)
        y = fwd(params[layer], act)
        grad = xla.jit(jax.grad(lambda p, a, g, apply=apply: jnp.vdot(apply(p, a), g),
                                argnums=(0,) if layer == "conv1" else (0, 1)))
        g = jnp.ones_like(y)
        seq, lo, hi = BLOCKS[variant][layer]
        block = getattr(net, seq)[lo:hi]
        t_in = torch.from_numpy(np.asarray(act).transpose(0, 3, 1, 2).copy()) \
            if act.ndim == 4 and not layer.startswith("fc") else \
            torch.from_numpy(np.asarray(act).reshape(batch, -1).copy())
        if layer == "fc6" and variant == "torchvision":
            t_in = torch.flatten(net.avgpool(torch.from_numpy(
                np.asarray(act).transpose(0, 3, 1, 2).copy())), 1)
        t_in.requires_grad_(layer != "conv1")
        t_out = block(t_in)
        t_g = torch.ones_like(t_out)

        def t_fwd(block=block, t_in=t_in):
            with torch.no_grad():
                block(t_in)

        def t_bwd(block=block, t_in=t_in, t_g=t_g):
            block.zero_grad(set_to_none=True)
            block(t_in).backward(t_g)

        a_now, p_now = act, params[layer]
        pairs[f"{layer} forward"] = (lambda f=fwd, p=p_now, a=a_now: f(p, a).block_until_ready(),
                                     t_fwd)
        pairs[f"{layer} backward"] = (
            lambda f=grad, p=p_now, a=a_now, g=g: jax.block_until_ready(f(p, a, g)), t_bwd)
        act = y
    return pairs


def op_pairs(variant: str, batch: int) -> dict[str, tuple[Callable, Callable]]:
    """LRN and max pooling on conv1's output, forward and backward; the optimizer update."""
    model = AlexNet(num_classes=CLASSES, variant=variant)
    params = layerwise.init_params(None, "scratch", CLASSES, variant, jax.random.key(0))
    size = input_size(variant)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, 3)), jnp.float32)
    # conv1's output before its LRN and pooling: the convolution and ReLU alone.
    pre = jax.nn.relu(xla.jit(lambda p, a: model.apply(
        {"params": p}, a, method=lambda m, v: m.conv1(v)))(params, x))
    t_pre = torch.from_numpy(np.asarray(pre).transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    pairs = {}
    ops = [("max pool", lambda v: max_pool(v, variant == "caffe"),
            torch.nn.MaxPool2d(3, 2, ceil_mode=variant == "caffe"))]
    if variant == "caffe":
        ops.insert(0, ("LRN", lrn, torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)))
    for name, fn, module in ops:
        fwd = xla.jit(fn)
        bwd = xla.jit(jax.grad(lambda v, fn=fn: jnp.sum(fn(v))))
        pairs[f"{name} forward"] = (lambda f=fwd: f(pre).block_until_ready(),
                                    lambda m=module: m(t_pre.detach()))
        pairs[f"{name} backward"] = (lambda f=bwd: f(pre).block_until_ready(),
                                     lambda m=module: m(t_pre).sum().backward())
    trainable, _ = layerwise.split(params, "scratch")
    optimizer = layerwise.make_optimizer("scratch", steps_per_epoch=1000)
    grads = jax.tree.map(jnp.ones_like, trainable)
    update = xla.jit(lambda p, s: _apply(optimizer, grads, p, s), donate_argnums=(0, 1))
    state = [trainable, optimizer.init(trainable)]

    def j_update():
        state[0], state[1] = update(state[0], state[1])
        jax.block_until_ready(state[0])

    net, _ = build(variant, CLASSES)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    pairs["SGD update (all layers)"] = (j_update, opt.step)
    return pairs


def _apply(optimizer, grads, params, state):
    updates, state = optimizer.update(grads, state, params)
    return jax.tree.map(lambda p, u: p + u, params, updates), state


def step_profile(variant: str, batch: int, tune_from: str, calls: int = 3) -> dict:
    """ms per step of ftjax's training step: its wall time, and the traced time of its operations
    by (pass, layer, operation) and by single operation. Needs ``--xla_cpu_enable_xprof_traceme``
    in ``XLA_FLAGS`` before jax starts."""
    step, (trainable, frozen, opt_state, data, key) = jax_step(variant, batch, tune_from)
    ops = {}  # instruction name -> (pass, layer, operation) from its op_name metadata
    program = step.lower(trainable, frozen, opt_state, data, key).compile().as_text()
    for line in program.splitlines():
        name = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        meta = re.search(r'op_name="([^"]*)"', line)
        if name:
            path = meta.group(1).split("/") if meta else []
            layer = next((p for p in path if p in LAYERS), "-")
            # no metadata: layout copies XLA added (mostly for the convolutions' gradients)
            kind = "backward" if any(p.startswith("transpose(") for p in path) else \
                "forward" if layer != "-" else "update" if path else "layout"
            op = re.sub(r"\[.*", "", path[-1]) if path else name.group(1)
            ops[name.group(1)] = (kind, layer, op)
    state = [trainable, opt_state]

    def run():
        state[0], state[1], _ = step(state[0], frozen, state[1], data, key)
        jax.block_until_ready(state[0])

    for _ in range(2):  # compile, then one step with warm buffers
        run()
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(calls):
                run()
            wall = (time.perf_counter() - start) * 1e3 / calls
        trace = json.loads(gzip.decompress(next(Path(tmp).rglob("perfetto_trace.json.gz"))
                                           .read_bytes()))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    by_group, by_op = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in ops:
            by_group[ops[e["name"]]] += e["dur"] / 1e3 / calls
            by_op[(e["name"], *ops[e["name"]])] += e["dur"] / 1e3 / calls
    return {"wall_ms": wall, "traced_ms": sum(by_group.values()),
            "groups": [[*k, v] for k, v in by_group.most_common()],
            "operations": [[*k, v] for k, v in by_op.most_common()]}


def print_step_profile(tune_from: str, profile: dict, top: int = 25) -> None:
    print(f"ftjax training step, tune_from={tune_from}: {profile['wall_ms']:.1f} ms, of which "
          f"{profile['traced_ms']:.1f} traced (the rest: XLA's convolutions, library calls)")
    print(f"{'ms':>8}  {'pass':9s}{'layer':7s}operation")
    for kind, layer, op, ms in profile["groups"][:top]:
        print(f"{ms:8.2f}  {kind:9s}{layer:7s}{op}")
    print(f"largest single operations:\n{'ms':>8}  {'instruction':34s}{'pass':9s}{'layer':7s}op")
    for name, kind, layer, op, ms in profile["operations"][:top]:
        print(f"{ms:8.2f}  {name:34s}{kind:9s}{layer:7s}{op}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="caffe", choices=("caffe", "torchvision"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="profile_ops.json")
    parser.add_argument("--step", choices=layerwise.TUNE_FROM, default=None,
                        help="trace ftjax's training step at this depth instead")
    args = parser.parse_args()
    if args.step:  # XLA:CPU's trace events, read when jax starts its backend (below)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_enable_xprof_traceme=true").strip()
    # A trace allocates an event per operation from every thread: the single arena of the
    # retained policy serializes them (a conv1 step traced 660 ms instead of 580), so a step is
    # traced under glibc's own policy, page faults included.
    retained = False if args.step else xla.retain_host_memory()
    print(f"{cpu_name()}; jax {jax.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); {args.variant}, batch {args.batch}, float32; "
          f"compiler options {xla.compiler_options(jax.default_backend())}, host memory "
          f"{'retained' if retained else 'glibc default'}")
    if args.step:
        profile = step_profile(args.variant, args.batch, args.step)
        print_step_profile(args.step, profile)
        Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "variant": args.variant,
                                              "batch": args.batch, "tune_from": args.step,
                                              **profile}, indent=1))
        print(f"wrote {args.out}")
        return
    peak = matmul_peak({"ftjax": jax_square, "torch": torch_square})
    print(f"matrix-product peak: ftjax {peak['ftjax']:.0f} GFLOP/s, PyTorch {peak['torch']:.0f}")
    print(f"{'operation':26s}{'ftjax ms':>10s}{'torch ms':>10s}{'ratio':>8s}  (torch / ftjax)")
    rows = {}
    for pairs in (block_pairs(args.variant, args.batch), op_pairs(args.variant, args.batch)):
        for name, (j, t) in medians(pairs, args.rounds, args.repeats).items():
            rows[name] = {"ftjax_ms": j, "torch_ms": t}
            print(f"{name:26s}{j:10.2f}{t:10.2f}{t / j:8.2f}", flush=True)
    total = {k: sum(r[f"{k}_ms"] for n, r in rows.items() if n.split()[0] in LAYERS)
             for k in ("ftjax", "torch")}
    print(f"{'blocks, fwd + bwd':26s}{total['ftjax']:10.1f}{total['torch']:10.1f}"
          f"{total['torch'] / total['ftjax']:8.2f}")
    Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "variant": args.variant,
                                          "batch": args.batch, "matmul_gflops": peak,
                                          "ops": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
