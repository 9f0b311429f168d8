"""Data parallelism: one training step run as ``jax.jit`` over a ('data',) mesh or through
``jax.pmap``, on one host or many (TPU VM pod slices).

Both strategies take the same pure step ``(trainable, frozen, opt_state, batch, rng) ->
(trainable, opt_state, metrics)`` and the same host batches; each process passes only its own
rows of every global batch (:func:`process_rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ftjax import xla

Step = Callable[..., tuple[Any, Any, dict]]


def initialize(distributed: bool, **kwargs: Any) -> None:
    """Join the multi-host job before any device is touched.

    Off by default: ``jax.distributed.initialize()`` fails on single-host machines that are not
    TPU VMs. On TPU VMs it needs no arguments; elsewhere pass ``coordinator_address``,
    ``num_processes`` and ``process_id`` (or set JAX's environment variables). CPU processes
    exchange gradients through gloo.
    """
    if distributed:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            jax.distributed.initialize(**kwargs)
        except (RuntimeError, ValueError) as e:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise ValueError(f"--distributed: could not join a multi-host job ({first}); on a "
                             "TPU VM run the same command on every host, elsewhere set "
                             "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID") \
                from e


def process_rows(global_batch: int) -> slice:
    """The rows of a global batch that this process loads."""
    n = jax.process_count()
    if global_batch % jax.device_count():
        raise ValueError(f"--batch_size={global_batch} is not divisible by the "
                         f"{jax.device_count()} devices")
    per = global_batch // n
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


class JitStrategy:
    """``jax.jit`` with the state replicated and the batch sharded over all devices."""

    name = "jit"

    def __init__(self, step: Step):
        self.mesh = Mesh(np.asarray(jax.devices()), ("data",))
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P("data"))
        r, s = self._replicated, self._sharded
        self._step = xla.jit(step, in_shardings=(r, r, r, s, r), out_shardings=(r, r, r),
                             donate_argnums=(0, 2))

    def put_state(self, tree: Any) -> Any:
        """Host arrays (the same on every process) -> replicated global arrays."""
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
            self._replicated, np.asarray(x)), tree)

    def put_batch(self, local: dict) -> dict:
        """This process's rows -> one global batch sharded over every device."""
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
            self._sharded, np.asarray(x)), local)

    def step(self, trainable, frozen, opt_state, batch, rng):
        return self._step(trainable, frozen, opt_state, batch, rng)

    def local(self, tree: Any) -> Any:
        """One device's copy of replicated state, for evaluation and checkpoints."""
        return jax.tree.map(lambda x: x.addressable_data(0), tree)


class PmapStrategy:
    """The same step through ``jax.pmap``: state copied to every local device, gradients averaged
    with ``pmean`` over all devices of all processes (the step's ``axis_name``)."""

    name = "pmap"
    axis_name = "data"

    def __init__(self, step: Step):
        self.n = jax.local_device_count()
        self._step = jax.pmap(step, axis_name=self.axis_name, in_axes=(0, 0, 0, 0, None),
                              donate_argnums=(0, 2))
        self._copy = jax.pmap(lambda x: x)

    def put_state(self, tree: Any) -> Any:
        return jax.tree.map(lambda x: self._copy(np.broadcast_to(np.asarray(x),
                                                                 (self.n, *np.shape(x)))), tree)

    def put_batch(self, local: dict) -> dict:
        def split(x):
            x = np.asarray(x)
            if x.shape[0] % self.n:
                raise ValueError(f"{x.shape[0]} rows do not split over {self.n} local devices")
            return x.reshape(self.n, x.shape[0] // self.n, *x.shape[1:])

        return jax.tree.map(split, local)

    def step(self, trainable, frozen, opt_state, batch, rng):
        return self._step(trainable, frozen, opt_state, batch, rng)

    def local(self, tree: Any) -> Any:
        return jax.tree.map(lambda x: x.addressable_data(0).reshape(x.shape[1:]), tree)


STRATEGIES = {"jit": JitStrategy, "pmap": PmapStrategy}


def make_strategy(name: str, make_step: Callable[[str | None], Step]) -> JitStrategy | PmapStrategy:
    """``make_step(axis_name)`` builds the step; pmap needs its collective axis name, jit none."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown parallel strategy {name!r}; expected one of {tuple(STRATEGIES)}")
    cls = STRATEGIES[name]
    return cls(make_step(getattr(cls, "axis_name", None)))

