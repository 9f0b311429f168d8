"""The frozen trunk's features, computed once per sweep (PAPER.md's protocol fixes the patches).

When only the layers from ``layerwise.cached_start(tune_from)`` up train, everything below sees
the same patches every epoch, and, with the same pretrained weights, in every run of a sweep: its
output for every training patch and validation candidate patch replaces the images, and a step
costs only the blocks above. Features are float32 (what the uncached step computes), stored under
``$FTJAX_CACHE/trunk/<key>/`` keyed by everything they depend on (the variant, input size, compute
dtype, the frozen layers' parameters and the patches' bytes), written once under a file lock so
that concurrent ``--jobs`` workers share them, held in memory up to ``--cache_trunk_gib`` and
memory-mapped beyond. A level is computed from the deepest cached level below it when there is
one, so a sweep run deepest-first pays for one forward pass of the trunk in all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ftjax import layerwise, xla
from ftjax.cache import cache_dir, process_alive
from ftjax.models import LAYERS, AlexNet
from ftjax.models.alexnet import layer_range

FORMAT = 1
CHUNK = 256  # patches per trunk call


@dataclasses.dataclass(frozen=True, eq=False)
class TrunkCache:
    """The frozen trunk's output for every training patch and validation candidate patch."""

    start: str  # the block a step starts from (layerwise.cached_start)
    fit: np.ndarray  # [N, ...] features of the training patches (in memory or memory-mapped)
    val: np.ndarray  # [C, K, ...] features of the validation candidates' patches
    seconds: float  # what building (or reading) them cost this run

    def validation_probabilities(self, model: AlexNet, params: Any) -> np.ndarray:
        """Mean class probabilities per validation candidate, running only the blocks above."""
        head = _jit_head(model, self.start)
        flat = self.val.reshape(-1, *self.val.shape[2:])
        probs = np.concatenate([np.asarray(head(params, np.asarray(flat[lo:lo + 512])))
                                for lo in range(0, len(flat), 512)] or
                               [np.zeros((0, model.num_classes), np.float32)])
        return probs.reshape(*self.val.shape[:2], -1).mean(axis=1)


@functools.lru_cache(maxsize=8)
def _jit_head(model: AlexNet, start: str) -> Callable:
    return xla.jit(lambda p, x: jax.nn.softmax(model.apply({"params": p}, x, start=start), -1))


@functools.lru_cache(maxsize=16)
def _jit_blocks(model: AlexNet, start: str, stop: str, prepare: Callable | None) -> Callable:
    def run(p: Any, x: jax.Array) -> jax.Array:
        x = prepare(x) if prepare is not None else x
        return model.apply({"params": p}, x, start=start, stop=stop).astype(np.float32)
    return xla.jit(run)


def level_key(model: AlexNet, params: Any, stop: str, size: int, patches: np.ndarray,
              val_patches: np.ndarray) -> str:
    """What the features at ``stop`` depend on, hashed: a change of any gives a new entry
    (``val_patches``: every validation patch, [C * K, h, w, c])."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, "variant": model.variant,
                                   "dtype": str(model.dtype), "size": size, "stop": stop,
                                   "fit": patches.shape, "val": val_patches.shape}).encode())
    for layer in layer_range(LAYERS[0], stop):
        for leaf in sorted(params[layer]):
            h.update(np.ascontiguousarray(np.asarray(params[layer][leaf])).tobytes())
    h.update(np.ascontiguousarray(patches).tobytes())
    h.update(np.ascontiguousarray(val_patches).tobytes())
    return h.hexdigest()[:32]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(entry: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The entry's memory-mapped arrays if it is complete and of the expected shapes."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            return None
        out = {name: np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
               for name in shapes}
    except (OSError, ValueError):
        return None
    if any(out[n].shape != s or out[n].dtype != np.float32 for n, s in shapes.items()):
        return None
    return out


def _clean(root: Path, key: str) -> None:
    """Remove the unreadable entry of ``key`` and half-written ones whose writer is gone
    (called under its lock: no one else writes it)."""
    shutil.rmtree(root / key, ignore_errors=True)
    for tmp in root.glob(f".{key}.tmp-*"):
        pid = tmp.name.rsplit("-", 2)[-2]
        if not pid.isdigit() or not process_alive(int(pid)) or int(pid) == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)


def build(model: AlexNet, params: Any, tune_from: str, size: int, fit: Any, val: Any,
          prepare: Callable, budget_gib: float, log: Callable[[str], None],
          root: Path | None = None) -> TrunkCache | None:
    """The frozen trunk's features for ``tune_from`` (None: nothing below it is frozen, or
    ``budget_gib`` is 0), from the shared cache or computed and added to it."""
    start = layerwise.cached_start(tune_from, model.variant)
    if start == LAYERS[0] or not budget_gib:
        return None
    stop = LAYERS[LAYERS.index(start) - 1]
    t = time.perf_counter()
    root = (root or cache_dir()) / "trunk"
    images = np.asarray(fit[np.arange(len(fit))])
    val_images = np.asarray(val.patches(np.arange(len(val))))
    flat_val = val_images.reshape(-1, *val_images.shape[2:])
    feature = jax.eval_shape(lambda x: model.apply({"params": params}, x, stop=stop),
                             jax.ShapeDtypeStruct((1, size, size, 3), np.float32)).shape[1:]
    shapes = {"fit": (len(images), *feature), "val": (len(flat_val), *feature)}
    gib = sum(math.prod(s) for s in shapes.values()) * 4 / 2**30
    key = level_key(model, params, stop, size, images, flat_val)
    with _locked(root / f"{key}.lock"):
        arrays = _read(root / key, shapes)
        if arrays is None:
            _clean(root, key)
            free = shutil.disk_usage(root).free / 2**30
            if free < gib * 1.05:
                log(f"not caching the frozen trunk: its {gib:.2f} GiB exceed the {free:.1f} "
                    f"GiB free in {root}")
                return None
            source = _write(model, params, stop, size, images, flat_val, prepare, root, key,
                            shapes, log)
            arrays = _read(root / key, shapes)
            if arrays is None:
                raise OSError(f"{root / key}: the trunk features just written cannot be read")
            what = f"computed ({source})"
        else:
            what = f"read from {root / key}"
    held = "in memory" if gib <= budget_gib else "memory-mapped (> --cache_trunk_gib)"
    if gib <= budget_gib:
        arrays = {n: np.array(a) for n, a in arrays.items()}
    seconds = time.perf_counter() - t
    span = f"conv1..{stop}" if stop != LAYERS[0] else stop
    log(f"frozen trunk ({span}) of {len(images)} training and {len(flat_val)} validation "
        f"patches: {gib:.2f} GiB {what}, {held}, in {seconds:.1f} s; steps start at {start}")
    return TrunkCache(start, arrays["fit"], arrays["val"].reshape(*val_images.shape[:2],
                                                                  *feature), seconds)


def _write(model: AlexNet, params: Any, stop: str, size: int, images: np.ndarray,
           flat_val: np.ndarray, prepare: Callable, root: Path, key: str,
           shapes: dict[str, tuple[int, ...]], log: Callable[[str], None]) -> str:
    """Compute the features of ``stop`` into a temporary entry, renamed into place when whole.
    Starts from the deepest cached level below ``stop`` of the same patches and weights."""
    lower, source = None, "from the patches"
    for level in reversed(LAYERS[:LAYERS.index(stop)]):
        lower_shapes = {n: (s[0], *jax.eval_shape(
            lambda x, lv=level: model.apply({"params": params}, x, stop=lv),
            jax.ShapeDtypeStruct((1, size, size, 3), np.float32)).shape[1:])
            for n, s in shapes.items()}
        lower = _read(root / level_key(model, params, level, size, images, flat_val),
                      lower_shapes)
        if lower is not None:
            source = f"from the cached conv1..{level} features"
            first = LAYERS[LAYERS.index(level) + 1]
            run = _jit_blocks(model, first, stop, None)
            break
    if lower is None:
        run = _jit_blocks(model, LAYERS[0], stop, prepare)
    tmp = root / f".{key}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir(parents=True)
    try:
        for name, inputs in (("fit", images), ("val", flat_val)):
            src = lower[name] if lower is not None else inputs
            out = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.float32,
                                            shape=shapes[name])
            for lo in range(0, len(src), CHUNK):
                out[lo:lo + CHUNK] = np.asarray(run(params, np.asarray(src[lo:lo + CHUNK])))
            out.flush()
            del out
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "stop": stop,
                                                   "shapes": shapes, "source": source}))
        tmp.rename(root / key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return source
