"""``--tune_from=auto``: the paper's fourth finding made a procedure (PAPER.md, conclusions).

Tune fc8 alone; then train one layer more from the top at a time while the validation AUC
improves by more than its noise. The noise of a gain is the standard deviation of the paired
bootstrap of the AUC difference (new depth minus the best so far) over the validation candidates,
or a fixed ``min_gain``. The walk stops at the first depth that does not clear it and keeps the
best depth seen. The trainer walks it with real runs; the study report walks the same rule over a
finished sweep's validation scores, so the two can be compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from ftjax.metrics import roc_auc, roc_bootstraps

#: The depths in the order the walk visits them: fc8 alone, then one layer more at a time.
ORDER: tuple[str, ...] = ("fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1")

Validation = tuple[np.ndarray, np.ndarray]  # (labels != 0, score of "not class 0")


@dataclasses.dataclass(frozen=True)
class Step:
    """One depth of the walk: its validation AUC, its gain over the best depth before it and the
    noise that gain had to clear (None for fc8), and whether the walk went on."""

    depth: str
    auc: float
    gain: float | None
    noise: float | None
    went_on: bool


def gain_noise(labels: np.ndarray, best: np.ndarray, new: np.ndarray, n_boot: int = 1000,
               seed: int = 0) -> float:
    """SD of the AUC difference ``new - best`` over paired bootstrap resamples of the
    validation candidates (both scored on the same candidates)."""
    boots = roc_bootstraps(labels, {"new": new, "best": best}, fprs=[0.5], n_boot=n_boot,
                           seed=seed)
    diff = boots["new"].summary_samples - boots["best"].summary_samples
    return float(np.nanstd(diff, ddof=1))


def walk(validate: Callable[[str], Validation], min_gain: float | None = None,
         order: Sequence[str] = ORDER) -> tuple[str, list[Step]]:
    """Visit ``order`` from the top while each depth beats the best before it by more than the
    noise (``min_gain`` when given); returns the best depth and the steps taken.

    ``validate(depth)`` trains (or reads) that depth and returns its validation labels and
    scores; it is called only for the depths the walk reaches.
    """
    steps: list[Step] = []
    best_depth, best_scores, best_auc = "", np.zeros(0), -np.inf
    for depth in order:
        labels, scores = validate(depth)
        auc = roc_auc(labels, scores)
        if not steps:
            steps.append(Step(depth, auc, None, None, True))
            best_depth, best_scores, best_auc = depth, scores, auc
            continue
        noise = gain_noise(labels, best_scores, scores) if min_gain is None else min_gain
        gain = auc - best_auc
        went_on = gain > noise
        steps.append(Step(depth, auc, gain, noise, went_on and depth != order[-1]))
        if not went_on:
            break
        best_depth, best_scores, best_auc = depth, scores, auc
    return best_depth, steps
