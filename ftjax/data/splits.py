"""Splitting cases (patients, videos, subjects), never patches: train/validation/test splits and
the paper's reduced training sets. Seeded by the data seed: every run of one data seed, whatever
its training seed, sees the same split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Independent random streams of one data seed.
TEST_STREAM, VALIDATION_STREAM, REDUCTION_STREAM = 2, 4, 1


def split_cases(cases: Sequence[str], held_out: float, seed: int,
                stream: int = TEST_STREAM) -> tuple[list[str], list[str]]:
    """``(kept, held out)``: a seeded ``held_out`` share of whole cases (at least one, never all);
    one case is never on both sides. Both lists keep the input order."""
    if len(set(cases)) != len(cases):
        raise ValueError("case ids must be unique")
    if len(cases) < 2:
        raise ValueError(f"need at least 2 cases to hold some out, got {len(cases)}")
    n_out = min(len(cases) - 1, max(1, round(held_out * len(cases))))
    order = np.random.default_rng([seed, stream]).permutation(len(cases))
    return [cases[i] for i in sorted(order[n_out:])], [cases[i] for i in sorted(order[:n_out])]


def reduce_cases(cases: Sequence[str], units: np.ndarray, fraction: float,
                 seed: int) -> tuple[list[str], float]:
    """The paper's reduced training set: whole cases removed until about ``fraction`` of the
    training units (PEs, videos) remains. Returns the kept cases and the fraction reached.

    Cases are taken in one seeded order and the shortest prefix whose units come closest to
    ``fraction`` of the total is kept (at least one case), so a smaller fraction keeps a subset of
    a larger one's cases, as the paper's nested reductions do.
    """
    units = np.asarray(units, np.float64)
    if len(units) != len(cases) or (units < 0).any():
        raise ValueError(f"need one non-negative unit count per case ({len(cases)}), got "
                         f"{units.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} must be in (0, 1]")
    total = units.sum()
    if fraction == 1 or not len(cases) or total == 0:
        return list(cases), 1.0
    order = np.random.default_rng([seed, REDUCTION_STREAM]).permutation(len(cases))
    reached = np.cumsum(units[order]) / total
    keep = int(np.argmin(np.abs(reached - fraction))) + 1
    return [cases[i] for i in sorted(order[:keep])], float(reached[keep - 1])
