"""One command for a lent accelerator (or a CPU): per tuning depth the training images/s and the
model FLOP utilisation, the scorer's patches/s, and the host feed rate; a table and a JSON file.

    python -m experiments.bench.accelerator --out=accelerator.json           # GPU / TPU
    python -m experiments.bench.accelerator --batch=8 --steps=3 --depths=fc8,conv1   # a CPU check

Needs only jax, flax, optax and numpy: the network, the layer-wise step and the scorer import
without the data libraries. The data are random uint8 32x32 patches (the stored patch size),
resized to the network input on the device as in training. Each depth runs the whole network
forward (the trainer's cached-trunk shortcut for fc6..fc8 is not used here) and differentiates
only the tuned layers. FLOPs per step are counted from the layer shapes (forward, plus weight
and input gradients of the tuned layers); utilisation is against the device's dense peak for
the compute precision XLA uses (float32 on CPU; on NVIDIA GPUs JAX's default precision lets
float32 matrix products and convolutions run as TF32 on tensor cores, so float32 is measured
against the TF32 peak and bfloat16 against twice it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench.machine import cpu_name
from ftjax import layerwise, xla
from ftjax.models.alexnet import _CONVS, LAYERS, AlexNet, input_size
from ftjax.scoring import Scorer, prepare

# Dense peak TFLOP/s by device kind (vendor datasheets; SXM parts): float32 (CUDA cores) and TF32
# tensor cores without sparsity.
PEAK_TFLOPS = {"H200": {"float32": 67.0, "tf32": 494.7}, "H100": {"float32": 67.0, "tf32": 494.7},
               "A100": {"float32": 19.5, "tf32": 156.0}, "L4": {"float32": 30.3, "tf32": 60.0}}
DEPTHS = tuple(reversed(LAYERS))  # fc8 ... conv1
PATCH = 32


def device_info() -> dict:
    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": d.device_kind, "devices": jax.device_count(),
            "jax": jax.__version__, "python": sys.version.split()[0], "host_cpu": cpu_name()}


def peak(kind: str) -> dict | None:
    for name, value in PEAK_TFLOPS.items():
        if name.lower() in kind.lower():
            return value
    return None


def forward_flops(arch: str, size: int) -> dict[str, float]:
    """Per layer the forward FLOPs (2 x multiply-adds) of one image, from the layer shapes.

    Counted by hand, not by XLA's cost analysis: on GPUs convolutions are library calls that the
    analysis does not count."""
    model = AlexNet(num_classes=2, variant=arch)
    params = layerwise.init_params(None, "scratch", 2, arch, jax.random.key(0), size=size)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    out = {}
    for layer in LAYERS:
        kernel = params[layer]["kernel"]
        if layer.startswith("conv"):
            spec = _CONVS[arch][layer]
            side = (x.shape[1] + 2 * spec.padding - spec.kernel) // spec.stride + 1
            out[layer] = 2.0 * side * side * kernel.size
        else:
            out[layer] = 2.0 * kernel.size
        x = jax.eval_shape(lambda v, layer=layer: model.apply({"params": params}, v,
                                                              start=layer, stop=layer), x)
    return out


def step_flops(per_layer: dict[str, float], tune_from: str) -> float:
    """One image's training FLOPs: the whole forward, and for every tuned layer its weight
    gradient and (except the first tuned layer, below which nothing is differentiated) its
    input gradient, each about one forward of the layer."""
    tuned = layerwise.trainable_layers(tune_from)
    backward = sum(per_layer[layer] * (1 if i == 0 else 2)
                   for i, layer in enumerate(sorted(tuned, key=LAYERS.index)))
    return sum(per_layer.values()) + backward


def train_rate(arch: str, tune_from: str, batch: int, steps: int, dtype: str) -> dict:
    """Images/s and FLOPs of one jitted training step at ``tune_from``."""
    model = AlexNet(num_classes=2, variant=arch, dtype=jnp.dtype(dtype))
    size = input_size(arch)
    params = layerwise.init_params(None, "scratch", 2, arch, jax.random.key(0))
    trainable, frozen = layerwise.split(params, tune_from)
    optimizer = layerwise.make_optimizer(tune_from, steps_per_epoch=1000)
    opt_state = optimizer.init(trainable)
    step = xla.jit(layerwise.make_train_step(
        model, optimizer, prepare=lambda x: prepare(x, arch, size)), donate_argnums=(0, 2))
    rng = np.random.default_rng(0)
    data = {"inputs": jnp.asarray(rng.integers(0, 256, (batch, PATCH, PATCH, 3), np.uint8)),
            "labels": jnp.asarray(rng.integers(0, 2, batch), jnp.int32)}
    key = jax.random.key(1)
    compiled = step.lower(trainable, frozen, opt_state, data, key).compile()
    for _ in range(2):  # warm-up
        trainable, opt_state, metrics = compiled(trainable, frozen, opt_state, data, key)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        trainable, opt_state, metrics = compiled(trainable, frozen, opt_state, data, key)
    jax.block_until_ready((trainable, metrics))
    seconds = time.perf_counter() - start
    flops = batch * step_flops(forward_flops(arch, size), tune_from)
    return {"images_per_s": batch * steps / seconds, "flops_per_step": flops,
            "tflops_per_s": flops * steps / seconds / 1e12}


def score_rate(arch: str, candidates: int, k: int, chunk: int, dtype: str) -> float:
    """Patches/s of the scorer on uint8 patches in host memory (transfer included)."""
    model = AlexNet(num_classes=2, variant=arch, dtype=jnp.dtype(dtype))
    params = layerwise.init_params(None, "scratch", 2, arch, jax.random.key(0))
    scorer = Scorer(model, params, chunk=chunk)
    patches = np.random.default_rng(0).integers(0, 256, (candidates, k, PATCH, PATCH, 3),
                                                np.uint8)
    scorer(patches[:chunk])  # compile
    start = time.perf_counter()
    scorer(patches)
    return candidates * k / (time.perf_counter() - start)


def feed_rate(batch: int, batches: int, stored: int = 50_000) -> float:
    """Patches/s from a uint8 array in host memory to a device-ready batch: a random gather of
    ``batch`` patches and its transfer, as the trainer's in-memory path does per step."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (stored, PATCH, PATCH, 3), np.uint8)
    jax.block_until_ready(jax.device_put(data[:batch]))
    start = time.perf_counter()
    for _ in range(batches):
        out = jax.device_put(data[np.sort(rng.choice(stored, batch, replace=False))])
    jax.block_until_ready(out)
    return batch * batches / (time.perf_counter() - start)


def disk_feed_rate(path: Path, batch: int, batches: int) -> dict[str, float]:
    """What a training run's own input path does with a cached patch data set on disk: the real
    reader (``ftjax.data.patch_dataset``, imported here only: it needs the data libraries)
    reads the training split into memory once, then each step gathers a random batch and
    transfers it. Returns both rates in patches/s."""
    from ftjax.data.patch_dataset import PatchDataset  # noqa: PLC0415 (data libraries)

    start = time.perf_counter()
    records = PatchDataset(path).training()
    read = len(records) / (time.perf_counter() - start)
    rng = np.random.default_rng(0)
    n = len(records)
    jax.block_until_ready(jax.device_put(records.patches[:batch]))
    start = time.perf_counter()
    for _ in range(batches):
        out = jax.device_put(records.patches[np.sort(rng.choice(n, min(batch, n),
                                                                replace=False))])
    jax.block_until_ready(out)
    return {"patches": n, "read_patches_per_s": read,
            "batches_patches_per_s": min(batch, n) * batches / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="caffe", choices=("caffe", "torchvision"))
    parser.add_argument("--dtypes", default="float32,bfloat16", help="compute dtypes to time")
    parser.add_argument("--depths", default=",".join(DEPTHS), help="tune_from values")
    parser.add_argument("--batch", type=int, default=256, help="training batch")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per depth")
    parser.add_argument("--candidates", type=int, default=512, help="scored candidates")
    parser.add_argument("--k", type=int, default=54, help="patches per candidate (pe: 54)")
    parser.add_argument("--chunk", type=int, default=64, help="candidates per scoring call")
    parser.add_argument("--out", default="accelerator.json")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="also time a cached patch data set on disk (a folder under "
                        "$FTJAX_CACHE/datasets/APP/) through the real reader")
    args = parser.parse_args()
    xla.retain_host_memory()
    depths = [d for d in args.depths.split(",") if d]
    unknown = sorted(set(depths) - set(LAYERS) - {"scratch"})
    if unknown:
        parser.error(f"--depths: unknown {unknown}; expected {', '.join(DEPTHS)}, scratch")
    info = device_info()
    peaks = peak(info["device_kind"])
    print(f"device: {info['device_kind']} x{info['devices']} ({info['platform']}), jax "
          f"{info['jax']}, host {info['host_cpu']}; peak TFLOP/s {peaks or 'unknown'}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    if set(dtypes) - {"float32", "bfloat16"}:
        parser.error(f"--dtypes: expected float32 and/or bfloat16, got {args.dtypes}")
    out = {"device": info, "peak_tflops": peaks, "arch": args.arch, "batch": args.batch,
           "train": {}, "score_patches_per_s": {}}
    for dtype in dtypes:
        # float32 runs as TF32 on NVIDIA tensor cores; bfloat16 peaks are twice TF32's
        scale = {"float32": 1.0, "bfloat16": 2.0}[dtype]
        print(f"{dtype}:\n{'tune_from':>9} {'img/s':>9} {'GFLOP/step':>11} {'TFLOP/s':>8} "
              f"{'of peak':>8}", flush=True)
        out["train"][dtype] = {}
        for depth in depths:
            r = train_rate(args.arch, depth, args.batch, args.steps, dtype)
            if peaks:
                r["peak_tflops"] = peaks["tf32"] * scale if info["platform"] == "gpu" \
                    else peaks["float32"]
                r["utilisation"] = r["tflops_per_s"] / r["peak_tflops"]
            out["train"][dtype][depth] = r
            print(f"{depth:>9} {r['images_per_s']:9.0f} {r['flops_per_step'] / 1e9:11.1f} "
                  f"{r['tflops_per_s']:8.2f} {r.get('utilisation', float('nan')):8.2%}",
                  flush=True)
        rate = score_rate(args.arch, args.candidates, args.k, args.chunk, dtype)
        out["score_patches_per_s"][dtype] = rate
        print(f"scoring ({dtype}): {rate:.0f} patches/s ({args.candidates} candidates x "
              f"{args.k} patches, {args.chunk} per call)", flush=True)
    out["host_feed_patches_per_s"] = feed_rate(args.batch, 50)
    print(f"host feed (memory -> device-ready batch): {out['host_feed_patches_per_s']:.0f} "
          "patches/s")
    if args.dataset is not None:
        disk = out["host_feed_from_disk"] = disk_feed_rate(args.dataset, args.batch, 50)
        print(f"host feed from {args.dataset}: read {disk['patches']} training patches at "
              f"{disk['read_patches_per_s']:.0f} patches/s, then batches at "
              f"{disk['batches_patches_per_s']:.0f} patches/s")
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
