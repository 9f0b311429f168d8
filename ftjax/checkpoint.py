"""Checkpoints with orbax: the latest state (to resume) and the best on validation (to evaluate).

Saves are atomic (orbax writes a temporary directory and renames it) and asynchronous; every save
waits for the previous one, and ``close`` waits for the last, so nothing is lost at exit. A save
that fails (a full disk) leaves the last complete checkpoint; a checkpoint that cannot be read
(truncated, missing its state) is a ``CheckpointError`` naming its directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read (the message names it and why)."""


def _reason(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


class Checkpoints:
    """``<workdir>/checkpoints/{latest,best}``, one checkpoint kept in each."""

    def __init__(self, workdir: str | Path):
        self.root = Path(workdir).absolute() / "checkpoints"
        opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self._managers = {k: ocp.CheckpointManager(self.root / k, options=opts)
                          for k in ("latest", "best")}

    def save(self, step: int, state: Any, meta: dict, best: bool = False) -> None:
        """Save ``state`` (a pytree of arrays) and ``meta`` (JSON) as the latest, and as the best.

        The best is written completely before the latest starts: whenever a latest checkpoint
        exists, so does the best one its ``meta`` refers to, whenever the process dies.
        """
        for kind in ("best", "latest") if best else ("latest",):
            mgr = self._managers[kind]
            try:
                mgr.wait_until_finished()
                if step in mgr.all_steps():  # left by a run that died and resumed from before it
                    mgr.delete(step)
                mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                       meta=ocp.args.JsonSave(meta)), force=True)
                if kind == "best":
                    mgr.wait_until_finished()
            except OSError as e:
                raise CheckpointError(f"{self.root / kind}: writing the checkpoint of step {step} "
                                      f"failed ({_reason(e)}); the last complete checkpoint is "
                                      "kept") from e

    def latest_step(self, kind: str = "latest") -> int | None:
        return self._managers[kind].latest_step()

    def resume(self, target: Any) -> tuple[Any, dict] | None:
        """The newest complete training state: the latest checkpoint, or the best one when it is
        newer (the best is written first, so a process that died writing the latest, e.g. on a
        full disk, left its state in the best)."""
        steps = {k: self.latest_step(k) for k in ("latest", "best")}
        if steps["best"] is not None and (steps["latest"] is None
                                          or steps["best"] > steps["latest"]):
            return self.restore("best", target)
        return self.restore("latest", target)

    def restore(self, kind: str, target: Any = None) -> tuple[Any, dict] | None:
        """(state, meta) of the ``kind`` checkpoint, or None if there is none. With a ``target``
        the state comes back in its structure and shardings; without, as a plain dict of numpy."""
        mgr = self._managers[kind]
        step = mgr.latest_step()
        if step is None:
            return None
        abstract = None if target is None else jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                                            target)
        try:
            out = mgr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except Exception as e:  # orbax/TensorStore raise many types for a damaged checkpoint
            raise CheckpointError(f"{self.root / kind / str(step)}: unreadable checkpoint "
                                  f"({_reason(e)}); delete it to start over") from e
        if not isinstance(out.meta, dict) or out.state is None:
            raise CheckpointError(f"{self.root / kind / str(step)}: the checkpoint lacks its "
                                  "state or meta; delete it to start over")
        return out.state, dict(out.meta)

    def wait(self) -> None:
        for kind, mgr in self._managers.items():
            try:
                mgr.wait_until_finished()
            except OSError as e:
                raise CheckpointError(f"{self.root / kind}: writing a checkpoint failed "
                                      f"({_reason(e)}); the last complete checkpoint is kept") \
                    from e

    def close(self) -> None:
        for mgr in self._managers.values():
            mgr.wait_until_finished()
            mgr.close()
