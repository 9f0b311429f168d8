"""Checkpoints with orbax: the latest state (to resume) and the best on validation (to evaluate).

Saves are atomic (orbax writes a temporary directory and renames it) and asynchronous; every save
waits for the previous one, and ``close`` waits for the last, so nothing is lost at exit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """``<workdir>/checkpoints/{latest,best}``, one checkpoint kept in each."""

    def __init__(self, workdir: str | Path):
        root = Path(workdir).absolute() / "checkpoints"
        opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self._managers = {k: ocp.CheckpointManager(root / k, options=opts)
                          for k in ("latest", "best")}

    def save(self, step: int, state: Any, meta: dict, best: bool = False) -> None:
        """Save ``state`` (a pytree of arrays) and ``meta`` (JSON) as the latest, and as the best.

        The best is written completely before the latest starts: whenever a latest checkpoint
        exists, so does the best one its ``meta`` refers to, whenever the process dies.
        """
        for kind in ("best", "latest") if best else ("latest",):
            mgr = self._managers[kind]
            mgr.wait_until_finished()
            mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
            if kind == "best":
                mgr.wait_until_finished()

    def latest_step(self, kind: str = "latest") -> int | None:
        return self._managers[kind].latest_step()

    def restore(self, kind: str, target: Any = None) -> tuple[Any, dict] | None:
        """(state, meta) of the ``kind`` checkpoint, or None if there is none. With a ``target``
        the state comes back in its structure and shardings; without, as a plain dict of numpy."""
        mgr = self._managers[kind]
        step = mgr.latest_step()
        if step is None:
            return None
        abstract = None if target is None else jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                                            target)
        out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                        meta=ocp.args.JsonRestore()))
        return out.state, dict(out.meta)

    def wait(self) -> None:
        for mgr in self._managers.values():
            mgr.wait_until_finished()

    def close(self) -> None:
        for mgr in self._managers.values():
            mgr.wait_until_finished()
            mgr.close()
