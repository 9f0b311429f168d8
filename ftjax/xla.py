"""How ftjax runs XLA fast: ``jax.jit`` plus the compiler options each backend needs, and the
host memory policy XLA:CPU needs.

XLA:CPU (jaxlib 0.10) hands matrix products, convolutions and reductions to YNNPACK by default.
On AlexNet's convolutions YNNPACK is the slower choice: conv1's strided 11x11 forward takes 2.8x
and the 3x3 kernel gradients of conv3..conv5 1.7x the time of XLA's own convolution. ftjax
compiles with the same list less the convolutions, which makes every training depth and the
scorer 1.2-1.6x faster on a 2-core EPYC (BUILD_NOTES.md, "Benchmarks"). The option is passed
per compilation (``jax.jit(compiler_options=...)``), not through ``XLA_FLAGS``, so importing
ftjax changes nothing in the user's own jax code. ``FTJAX_CPU_LIBRARY=xla`` compiles with
XLA's defaults instead; a jaxlib that does not know the option gets its defaults too. GPUs and
TPUs get no options.

XLA:CPU allocates a program's temporaries (about 600 MB for a conv1 training step at batch 32)
with ``posix_memalign`` from its worker threads, and glibc serves such blocks with fresh
``mmap`` pages that it unmaps on ``free``: every step page-faults all of them again (140,000
faults, a fifth of the step). :func:`retain_host_memory`, which ftjax's command lines call before
jax starts, keeps freed memory in the process instead.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

ENV = "FTJAX_CPU_LIBRARY"  # "ftjax" (default: the options below) or "xla" (XLA's defaults)
# YNNPACK for single matrix products and reductions, not for convolutions.
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type":
               "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


@functools.cache
def compiler_options(platform: str) -> dict[str, str] | None:
    """The options ftjax compiles with on ``platform`` ("cpu", "gpu", "tpu"), or None."""
    if platform != "cpu":
        return None
    choice = os.environ.get(ENV, "ftjax").lower()
    if choice not in ("ftjax", "xla"):
        raise ValueError(f"{ENV}={choice!r}: expected 'ftjax' or 'xla'")
    if choice == "xla":
        return None
    try:  # older or newer jaxlibs may not know the option: probe it once
        jax.jit(jnp.dot, compiler_options=CPU_OPTIONS).lower(
            jnp.ones((2, 2)), jnp.ones((2, 2))).compile()
    except Exception:  # noqa: BLE001 (any refusal means: compile without it)
        return None
    return CPU_OPTIONS


class _Jit:
    """``jax.jit(fun, **kwargs)`` built at its first use, with the default backend's options.

    Built lazily because the backend is only known once jax has started it, and starting it at
    import time would come before ``jax.distributed.initialize`` on multi-host TPU VMs. Called
    inside another trace (the user's ``jit``, ``eval_shape``), it is a plain nested ``jax.jit``:
    compiler options belong to the outermost compilation.
    """

    def __init__(self, fun: Callable, kwargs: dict[str, Any]):
        functools.update_wrapper(self, fun)
        self._fun, self._kwargs = fun, kwargs

    @functools.cached_property
    def _jitted(self) -> Any:
        options = compiler_options(jax.default_backend())
        return jax.jit(self._fun, compiler_options=options, **self._kwargs)

    @functools.cached_property
    def _nested(self) -> Any:
        return jax.jit(self._fun, **self._kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
        return (self._nested if traced else self._jitted)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._jitted, name)


def jit(fun: Callable, **kwargs: Any) -> Any:
    """``jax.jit`` with ftjax's compiler options for the backend it runs on (see module doc)."""
    return _Jit(fun, kwargs)


MALLOC_ENV = "FTJAX_MALLOC"  # "retain" (default) or "system" (glibc's own policy)
# glibc's mallopt parameters (malloc.h) and the values retain_host_memory sets.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_RETAIN = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))


def retain_host_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS; True if set.

    One arena for all threads (a worker thread's arena maps every block over 64 MB afresh, whatever
    the other settings), no ``mmap`` for large blocks, no trimming of the heap below 2 GiB free.
    A step then reuses the pages of the previous one: a conv1 training step (batch 32, 2-core
    EPYC) goes from 540 to 420 ms. The cost is that the process keeps its peak host memory.
    Call it first, before jax starts its CPU backend (its threads pick their arena on their
    first allocation). Does nothing, and returns False, off glibc or with ``FTJAX_MALLOC=system``.
    """
    choice = os.environ.get(MALLOC_ENV, "retain").lower()
    if choice not in ("retain", "system"):
        raise ValueError(f"{MALLOC_ENV}={choice!r}: expected 'retain' or 'system'")
    if choice == "system" or not sys.platform.startswith("linux"):
        return False
    try:  # the C library already loaded into the process (no search for its file)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    return all(mallopt(param, value) == 1 for param, value in _RETAIN)
