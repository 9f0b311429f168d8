"""Splitting cases (patients, videos, subjects), never patches: train/validation/test splits and
the paper's reduced training sets. Seeded: every run of one data seed sees the same split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def subsample_cases(cases: Sequence[str], fraction: float, seed: int) -> list[str]:
    """Keep a seeded ``fraction`` of whole cases (the paper's reduced training sets)."""
    if fraction >= 1:
        return list(cases)
    keep = max(2, round(fraction * len(cases)))
    chosen = _rng(seed, 1).choice(len(cases), size=min(keep, len(cases)), replace=False)
    return [cases[i] for i in sorted(chosen)]


def split_cases(cases: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str],
                                                                                list[str]]:
    """Split cases (never patches) into train/validation: one case is never on both sides."""
    if len(set(cases)) != len(cases):
        raise ValueError("case ids must be unique")
    if len(cases) < 2:
        raise ValueError(f"need at least 2 training cases to hold some out for validation, got "
                         f"{len(cases)}")
    n_val = min(len(cases) - 1, max(1, round(val_fraction * len(cases))))
    order = _rng(seed, 2).permutation(len(cases))
    val = sorted(order[:n_val])
    fit = sorted(order[n_val:])
    return [cases[i] for i in fit], [cases[i] for i in val]
