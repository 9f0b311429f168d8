"""Splitting cases (patients, videos, subjects), never patches: train/validation/test splits and
the paper's reduced training sets. Seeded by the data seed: every run of one data seed, whatever
its training seed, sees the same split."""

from __future__ import annotations

import dataclasses
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


def k_fold(cases: Sequence[str], folds: int, fold: int, seed: int) -> tuple[list[str], list[str]]:
    """``(kept, held out)`` of grouped K-fold cross-validation: whole cases dealt in one seeded
    order into ``folds`` folds of sizes differing by at most one; fold ``fold`` is held out.
    Over the K folds every case is held out exactly once."""
    if len(set(cases)) != len(cases):
        raise ValueError("case ids must be unique")
    if not 2 <= folds <= len(cases):
        raise ValueError(f"{folds}-fold cross-validation needs 2 <= folds <= the {len(cases)} "
                         "cases")
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not one of the {folds} folds (0..{folds - 1})")
    order = np.random.default_rng([seed, TEST_STREAM]).permutation(len(cases))
    out = set(order[fold::folds].tolist())
    return ([c for i, c in enumerate(cases) if i not in out],
            [c for i, c in enumerate(cases) if i in out])


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """Which of a data set's cases an application tests on (the ``split`` of ``make_app``):

    ``""``          a seeded held-out share (the preset's ``test_fraction``), the default;
    ``"fold=I/K"``  fold I of grouped K-fold cross-validation (``--folds=K --fold=I``);
    ``"train"``     none: every case trains or validates (an external ``--test_data`` tests);
    ``"test"``      every case: the external test set itself.
    """

    role: str = "split"  # split | folds | train | test
    fold: int = 0
    folds: int = 0

    @classmethod
    def parse(cls, text: str) -> SplitPlan:
        if text in ("", "split"):
            return cls()
        if text in ("train", "test"):
            return cls(text)
        name, _, value = text.partition("=")
        fold, _, folds = value.partition("/")
        if name == "fold" and fold.isdigit() and folds.isdigit() and int(fold) < int(folds) \
                and int(folds) >= 2:
            return cls("folds", int(fold), int(folds))
        raise ValueError(f"split {text!r}: expected '', 'fold=I/K' (0 <= I < K, K >= 2), "
                         "'train' or 'test'")

    def divide(self, cases: Sequence[str], test_fraction: float,
               seed: int) -> tuple[list[str], list[str]]:
        """``(train and validation cases, test cases)``."""
        if self.role == "train":
            return list(cases), []
        if self.role == "test":
            return [], list(cases)
        if self.role == "folds":
            return k_fold(cases, self.folds, self.fold, seed)
        return split_cases(cases, test_fraction, seed)
