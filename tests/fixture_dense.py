"""A tiny dense application, shaped like ``cimt``: SYNTHETIC grey images with one bright
boundary (a row per column, drifting smoothly), pixels classified as on the boundary or not. Its
test is not candidate scoring: it classifies every pixel of each test image itself (through the
scorer's ``prepare`` and ``logits``), takes per column the row of highest probability, and is
judged by the mean boundary error in micrometres. Validation: the pixel AUC of boundary vs
background (patches with K = 1). Use as ``--app=fixture_dense:make`` with ``tests/`` on the path.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from ftjax.apps import ArrayCandidates, ArrayPatches
from ftjax.apps.protocol import TestResult
from ftjax.predictions import Predictions, headline

ROWS, COLS, HALF = 10, 12, 3  # image size; patches are (2 * HALF + 1) squared
UM_PER_PIXEL = 60.0


class DenseFixture:
    name = "fixture_dense"
    classes = ("background", "boundary")
    synthetic = True
    reduction_unit = "subjects"
    validation_metric = "pixel AUC, boundary vs background (K = 1)"

    def __init__(self, data_seed: int = 0):
        self.seed = data_seed
        self._cases = {"train": [f"s{i}" for i in range(5)], "validation": ["s5", "s6"],
                       "test": ["s7", "s8", "s9"]}

    def cases(self, split):
        return list(self._cases[split])

    def units(self, cases):
        return np.ones(len(cases))

    def image(self, case: str) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [ROWS, COLS, 1] and the boundary's row per column."""
        rng = np.random.default_rng([self.seed, int(case[1:])])
        rows = np.clip(np.round(4.5 + np.cumsum(rng.integers(-1, 2, COLS)) * 0.5), 2, ROWS - 3)
        img = rng.normal(60, 12, (ROWS, COLS))
        img[rows.astype(int), np.arange(COLS)] += 120
        return np.clip(img, 0, 255).astype(np.uint8)[..., None], rows.astype(int)

    def pixel_patches(self, case: str) -> tuple[np.ndarray, np.ndarray]:
        """Every pixel's patch [ROWS * COLS, p, p, 1] and its label (row-major order)."""
        img, rows = self.image(case)
        padded = np.pad(img, ((HALF, HALF), (HALF, HALF), (0, 0)), mode="edge")
        size = 2 * HALF + 1
        patches = np.lib.stride_tricks.sliding_window_view(padded, (size, size, 1))
        labels = np.zeros((ROWS, COLS), np.int32)
        labels[rows, np.arange(COLS)] = 1
        return patches.reshape(ROWS * COLS, size, size, 1), labels.ravel()

    def _pixels(self, cases):
        both = [self.pixel_patches(c) for c in cases]
        return np.concatenate([p for p, _ in both]), np.concatenate([lab for _, lab in both])

    def training_patches(self, cases):
        patches, labels = self._pixels(cases)
        ids = np.repeat(np.arange(len(cases)), ROWS * COLS)
        return ArrayPatches(patches, labels, ids)

    def validation_candidates(self, cases):
        patches, labels = self._pixels(cases)
        return ArrayCandidates(patches[:, None], labels)

    def test(self, scorer, outdir: Path) -> TestResult:
        columns = {k: [] for k in ("case", "cluster", "item", "truth", "score")}
        for case in self.cases("test"):
            patches, _ = self.pixel_patches(case)
            logits = scorer.logits(scorer.prepare(patches))  # dense: the network on every pixel
            prob = np.asarray(jax.nn.softmax(logits, -1))[:, 1].reshape(ROWS, COLS)
            _, rows = self.image(case)
            columns["case"] += [case] * COLS
            columns["cluster"] += [case] * COLS
            columns["item"] += [str(x) for x in range(COLS)]
            columns["truth"] += rows.tolist()
            columns["score"] += prob.argmax(0).tolist()
        pred = Predictions(
            app=self.name, synthetic=True,
            metric={"kind": "boundary", "name": "mean boundary error (um)", "n_boot": 200,
                    "seed": self.seed},
            columns={k: np.asarray(v) for k, v in columns.items()},
            cases={c: {"cluster": c, "um_per_pixel": UM_PER_PIXEL} for c in self.cases("test")})
        return TestResult(headline(pred), pred, {"chance_error_um": UM_PER_PIXEL * ROWS / 3})


def make(data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
         val_fraction: float = 0.2) -> DenseFixture:
    return DenseFixture(data_seed=data_seed)
