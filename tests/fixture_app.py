"""A tiny in-memory candidate application for trainer tests: SYNTHETIC 16x16 patches, a bright
blob on noise (positive) or noise alone (negative), several cases per split, K patches per
candidate, scored by ROC AUC.

It implements the real application protocol (``ftjax.apps.protocol``); use it as
``--app=fixture_app:make`` with ``tests/`` on the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftjax.apps import ArrayCandidates, ArrayPatches
from ftjax.apps.protocol import TestResult
from ftjax.data.splits import VALIDATION_STREAM, SplitPlan, split_cases
from ftjax.predictions import Predictions, headline

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
    reduction_unit = "cases"
    validation_metric = "candidate AUC (mean over K patches)"

    def __init__(self, data_seed: int = 0, val_fraction: float = 0.2, train_cases: int = 8,
                 patches_per_case: int = 24, k: int = 3, split: str = ""):
        self.seed, self.per, self.k = data_seed, patches_per_case, k
        train, test = [f"train{i}" for i in range(train_cases)], [f"test{i}" for i in range(6)]
        if split:  # a fold, or an external test set: the cases are divided anew
            train, test = SplitPlan.parse(split).divide(train + test, 0.4, data_seed)
        fit, val = split_cases(train, val_fraction, data_seed, VALIDATION_STREAM) if train \
            else ([], [])
        self._cases = {"train": fit, "validation": val, "test": test}

    def cases(self, split):
        return list(self._cases[split])

    def units(self, cases):
        return np.ones(len(cases))

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

    def _candidates(self, cases):
        arrays, labels, owner = [], [], []
        for case in cases:
            rng = self._case_rng(case + "/candidates")
            lab = (np.arange(8) % 2).astype(np.int32)
            arrays.append(_patches(rng, np.repeat(lab, self.k)).reshape(8, self.k, SIZE, SIZE, 3))
            labels.append(lab)
            owner += [case] * 8
        return ArrayCandidates(np.concatenate(arrays), np.concatenate(labels)), np.array(owner)

    def validation_candidates(self, cases):
        return self._candidates(cases)[0]

    def test(self, scorer, outdir: Path) -> TestResult:
        candidates, owner = self._candidates(self.cases("test"))
        probs = scorer.score(candidates)
        pred = Predictions(
            app=self.name, synthetic=True, metric={"kind": "roc", "name": "AUC"},
            columns={"case": owner, "cluster": owner, "item": np.arange(len(owner)).astype(str),
                     "truth": candidates.labels, "score": probs[:, 1]},
            cases={c: {"cluster": c} for c in self.cases("test")})
        head = headline(pred)
        return TestResult(head, pred, {"auc": head.value})


def make(data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
         val_fraction: float = 0.2, split: str = "") -> Fixture:
    return Fixture(data_seed=data_seed, val_fraction=val_fraction, split=split)


# What the study harness reads of a registered app's presets.STUDY.
make.study_facts = {"reduced_fractions": (0.5,), "reduced_configs": ("scratch",),
                    "reduction_unit": "cases", "metric": "roc", "operating_points": (0.1,)}
