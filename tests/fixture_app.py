"""A tiny in-memory application for trainer tests: SYNTHETIC 16x16 patches, a bright blob on
noise (positive) or noise alone (negative), several cases per split, K patches per candidate.

It implements the real application protocol (``ftjax.apps.protocol``); use it as
``--app=fixture_app:make`` with ``tests/`` on the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftjax.apps import ArrayCandidates, ArrayPatches
from ftjax.metrics import roc_auc

SIZE = 16


def _patches(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    x = rng.normal(90, 25, size=(len(labels), SIZE, SIZE, 3))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in np.flatnonzero(labels):
        cy, cx = rng.uniform(5, SIZE - 5, size=2)
        x[i] += 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)


class Fixture:
    name = "fixture"
    classes = ("negative", "positive")
    synthetic = True

    def __init__(self, seed: int = 0, cases_per_split: int = 6, patches_per_case: int = 24,
                 k: int = 3):
        self.seed, self.n, self.per, self.k = seed, cases_per_split, patches_per_case, k

    def cases(self, split):
        return [f"{split}{i}" for i in range(self.n)]

    def _case_rng(self, case: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, *case.encode()])

    def training_patches(self, cases):
        labels, patches, ids = [], [], []
        for j, case in enumerate(cases):
            rng = self._case_rng(case)
            lab = (np.arange(self.per) % 3 == 0).astype(np.int32)  # 1 positive : 2 negatives
            patches.append(_patches(rng, lab))
            labels.append(lab)
            ids.append(np.full(self.per, j))
        return ArrayPatches(np.concatenate(patches), np.concatenate(labels), np.concatenate(ids))

    def test_candidates(self, cases):
        arrays, labels = [], []
        for case in cases:
            rng = self._case_rng(case)
            lab = (np.arange(8) % 2).astype(np.int32)
            arrays.append(_patches(rng, np.repeat(lab, self.k)).reshape(8, self.k, SIZE, SIZE, 3))
            labels.append(lab)
        return ArrayCandidates(np.concatenate(arrays), np.concatenate(labels))

    def evaluate(self, candidates, probabilities, outdir: Path):
        return {"auc": roc_auc(candidates.info, probabilities[:, 1])}


def make(data: str = "synthetic", preset: str = "smoke", seed: int = 0) -> Fixture:
    return Fixture(seed=seed)
