"""What an application supplies to the trainer, and nothing more (DESIGN.md, "The library").

The trainer knows no application. An application names its classes, lists its cases per split
(patients, videos, subjects: the unit a split never cuts), builds training patches for a set of
cases, turns test cases into candidates with K patches each, and scores the candidates with the
paper's metric. Patches are uint8 NHWC at their native size; the device resizes and preprocesses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


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
    """Test candidates, each represented by K augmented patches; ``info`` is the application's own
    record of what each candidate is (case, position, ...), read back by ``evaluate``."""

    info: Any

    def __len__(self) -> int: ...

    def patches(self, index: np.ndarray) -> np.ndarray:
        """uint8 [len(index), K, h, w, c]."""
        ...


@dataclasses.dataclass(frozen=True)
class ArrayCandidates:
    """A CandidateSource held in memory."""

    array: np.ndarray  # uint8 [C, K, h, w, c]
    info: Any = None

    def __len__(self) -> int:
        return len(self.array)

    def patches(self, index: np.ndarray) -> np.ndarray:
        return self.array[index]


@runtime_checkable
class Application(Protocol):
    """One of the paper's applications (or a user's own)."""

    name: str
    classes: tuple[str, ...]  # class 0 is the negative / background class
    synthetic: bool  # True when the data is generated: every output says so

    def cases(self, split: str) -> Sequence[str]:
        """Case ids of the ``'train'`` or ``'test'`` split; no case is in both."""
        ...

    def training_patches(self, cases: Sequence[str]) -> PatchSource:
        """Labelled patches of the given cases (training or validation side)."""
        ...

    def test_candidates(self, cases: Sequence[str]) -> CandidateSource:
        """Candidates of the given test cases with their augmented patches."""
        ...

    def evaluate(self, candidates: CandidateSource, probabilities: np.ndarray,
                 outdir: Path) -> Mapping[str, Any]:
        """The paper's metric from per-candidate mean class probabilities [C, num_classes];
        writes figures into ``outdir`` and returns JSON-serialisable results."""
        ...
