"""What a benchmark ran on, printed beside its figures: ratios between frameworks depend on the CPU
(model, vector extensions, cores), and a throughput means little without the machine's own
matrix-product peak measured in the same run."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PEAK_SIDE = 2048  # the square float32 product whose rate is "the machine's peak"


def cpu_name() -> str:
    """The CPU's model, its widest vector extension and its logical cores."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    lines = info.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                 platform.machine())
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    cores = sum(ln.startswith("processor") for ln in lines)
    return f"{model} ({vector}, {cores} cores)"


def alternating_ms(fns: dict[str, Callable[[], object]], rounds: int,
                   repeats: int) -> dict[str, float]:
    """Median ms per call of each function, the functions taking turns round by round (after one
    warm-up call each), so that other load on the machine hits all of them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[name].append(1e3 * (time.perf_counter() - start) / repeats)
    return {k: float(np.median(v)) for k, v in times.items()}


def matmul_peak(products: dict[str, Callable[[np.ndarray], Callable[[], object]]],
                rounds: int = 3, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a ``PEAK_SIDE``-square float32 product in each framework. ``products`` maps a
    name to a function that takes the numpy matrix and returns a closure computing its square
    (synchronously)."""
    a = np.random.default_rng(0).normal(size=(PEAK_SIDE, PEAK_SIDE)).astype(np.float32)
    ms = alternating_ms({k: make(a) for k, make in products.items()}, rounds, repeats)
    return {k: 2 * PEAK_SIDE**3 / (t * 1e-3) / 1e9 for k, t in ms.items()}
