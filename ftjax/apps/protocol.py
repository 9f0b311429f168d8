"""What an application supplies to the trainer, and nothing more (DESIGN.md, "The library").

The trainer knows no application. An application names its classes, lists its cases per split
(patients, videos, subjects: the unit a split never cuts; ``train``, ``validation`` and ``test``,
fixed by the data seed), says how many of the paper's reduction units each training case holds
(PEs, videos), builds training patches for a set of training cases, gives labelled validation
candidates (the trainer scores them each epoch for model selection), and runs its own test: it is
handed the trainer's :class:`ftjax.scoring.Scorer` and returns a :class:`TestResult` whose
per-item predictions the trainer writes next to ``results.json``. Patches are uint8 NHWC at their
native size; the device resizes and preprocesses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ftjax.predictions import Headline, Predictions

if TYPE_CHECKING:
    from ftjax.scoring import Scorer

SPLITS = ("train", "validation", "test")


@runtime_checkable
class PatchSource(Protocol):
    """Random access to labelled training patches; labels and cases are known without loading."""

    labels: np.ndarray  # [N] int class of each patch (0 = negative / background)
    cases: np.ndarray  # [N] index into the case list the source was built from

    def __len__(self) -> int: ...

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        """uint8 patches [len(index), h, w, c] for integer indices."""
        ...


@dataclasses.dataclass(frozen=True)
class ArrayPatches:
    """A PatchSource held in memory."""

    patches: np.ndarray
    labels: np.ndarray
    cases: np.ndarray

    def __post_init__(self):
        n = len(self.patches)
        if self.patches.dtype != np.uint8 or self.patches.ndim != 4:
            raise ValueError(f"patches must be uint8 [N, h, w, c], got {self.patches.dtype} "
                             f"{self.patches.shape}")
        if len(self.labels) != n or len(self.cases) != n:
            raise ValueError(f"{n} patches but {len(self.labels)} labels and "
                             f"{len(self.cases)} case ids")

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.patches[index]


@runtime_checkable
class CandidateSource(Protocol):
    """Labelled candidates, each represented by K augmented patches (for a dense application,
    pixels with K = 1): the trainer scores each by the mean over its patches."""

    labels: np.ndarray  # [C] class of each candidate

    def __len__(self) -> int: ...

    def patches(self, index: np.ndarray) -> np.ndarray:
        """uint8 [len(index), K, h, w, c]."""
        ...


@dataclasses.dataclass(frozen=True)
class ArrayCandidates:
    """A CandidateSource held in memory."""

    array: np.ndarray  # uint8 [C, K, h, w, c]
    labels: np.ndarray  # [C]

    def __post_init__(self):
        if self.array.dtype != np.uint8 or self.array.ndim != 5:
            raise ValueError(f"candidates must be uint8 [C, K, h, w, c], got {self.array.dtype} "
                             f"{self.array.shape}")
        if len(self.labels) != len(self.array):
            raise ValueError(f"{len(self.array)} candidates but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.array)

    def patches(self, index: np.ndarray) -> np.ndarray:
        return self.array[index]


@dataclasses.dataclass(frozen=True, eq=False)
class TestResult:
    """What an application's test returns: the headline metric (computed from ``predictions``
    with ``ftjax.predictions.headline``, so the files reproduce it), the per-item predictions, and
    a JSON summary (curves, operating points, baselines, figures)."""

    headline: Headline
    predictions: Predictions
    summary: Mapping[str, Any]


@runtime_checkable
class Application(Protocol):
    """One of the paper's applications (or a user's own)."""

    name: str
    classes: tuple[str, ...]  # class 0 is the negative / background class
    synthetic: bool  # True when the data is generated: every output says so
    reduction_unit: str  # what a reduced training set counts: "PEs", "videos", "subjects"
    validation_metric: str  # what the AUC of validation_candidates measures

    def cases(self, split: str) -> Sequence[str]:
        """Case ids of ``'train'``, ``'validation'`` or ``'test'``; no case is in two splits."""
        ...

    def units(self, cases: Sequence[str]) -> np.ndarray:
        """Per training case its number of reduction units (PEs of a patient; 1 per video)."""
        ...

    def training_patches(self, cases: Sequence[str]) -> PatchSource:
        """Labelled training patches of the given training cases."""
        ...

    def validation_candidates(self, cases: Sequence[str]) -> CandidateSource:
        """Labelled candidates of the validation cases; their AUC (not-class-0 vs class 0 of the
        mean probabilities) selects the best snapshot."""
        ...

    def test(self, scorer: Scorer, outdir: Path) -> TestResult:
        """Score the test split its own way (candidates through ``scorer``, or dense inference
        with ``scorer.model``/``params``/``prepare``); figures go to ``outdir``."""
        ...
