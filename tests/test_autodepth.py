"""``--tune_from=auto``: the top-down walk's rule on hand-made validation scores, and the trainer's
walk on a fixture whose "pretrained" fc7 carries no signal, so that only deeper tuning can
learn (fc8 alone stays at chance)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from ftjax import autodepth, layerwise, trainer, weights
from ftjax.trainer import make_config


def _scores(auc_like: float, rng: np.random.Generator, n: int = 200):
    """Labels and scores whose separation grows with ``auc_like`` (0: chance)."""
    labels = np.arange(n) % 2 == 0
    return labels, rng.normal(size=n) + auc_like * labels


def test_the_walk_goes_on_while_the_gain_clears_the_noise_and_keeps_the_best():
    rng = np.random.default_rng(0)
    table = {"fc8": _scores(0.0, rng), "fc7": _scores(1.0, rng), "fc6": _scores(2.5, rng),
             "conv5": _scores(2.5, rng), "conv4": _scores(4.0, rng)}
    seen = []

    def validate(depth):
        seen.append(depth)
        return table[depth]

    chosen, steps = autodepth.walk(validate)
    # conv5 repeats fc6's separation (new noise): its gain cannot clear the bootstrap noise,
    # so the walk stops there and never trains conv4, however good it would be.
    assert seen == ["fc8", "fc7", "fc6", "conv5"] and chosen == "fc6"
    assert [s.went_on for s in steps] == [True, True, True, False]
    assert steps[1].gain == pytest.approx(steps[1].auc - steps[0].auc)
    assert all(0 < s.noise < 0.1 for s in steps[1:])
    # A fixed gain replaces the noise: 0.3 is more than fc7 adds over fc8's chance.
    seen.clear()
    chosen, steps = autodepth.walk(validate, min_gain=0.3)
    assert chosen == "fc7" and seen == ["fc8", "fc7", "fc6"] and steps[-1].noise == 0.3


def test_noise_is_the_sd_of_the_paired_bootstrap_gain():
    rng = np.random.default_rng(1)
    labels, a = _scores(1.0, rng)
    b = a + rng.normal(scale=0.5, size=a.size)
    noise = autodepth.gain_noise(labels, a, b, n_boot=400, seed=3)
    # Independent reference: resample the candidates by hand and recompute both AUCs.
    from sklearn.metrics import roc_auc_score

    draws = np.random.default_rng(7).integers(0, a.size, size=(400, a.size))
    diffs = [roc_auc_score(labels[d], b[d]) - roc_auc_score(labels[d], a[d]) for d in draws]
    assert noise == pytest.approx(np.std(diffs, ddof=1), rel=0.2)
    assert autodepth.gain_noise(labels, a, a) == 0.0  # the same scores: no noise at all


def test_auto_goes_deeper_than_fc8_when_only_deeper_layers_can_learn(tmp_path, capsys):
    trunk = jax.device_get(layerwise.init_params(None, "scratch", 2, "caffe", jax.random.key(5),
                                                 size=67))
    trunk["fc7"]["kernel"] = np.zeros_like(trunk["fc7"]["kernel"])  # fc7's output: a constant
    trunk["fc7"]["bias"] = np.full_like(trunk["fc7"]["bias"], 0.1)
    weights.save(trunk, tmp_path / "trunk.npz")
    config = make_config("fixture_app:make", "smoke", tune_from="auto", input_size=67,
                         batch_size=16, epochs=2, base_lr=0.01, eval_chunk=16,
                         weights=str(tmp_path / "trunk.npz"))
    results = trainer.train_and_evaluate(config, tmp_path / "auto")
    path = results["auto"]["path"]
    assert path[0]["depth"] == "fc8" and path[0]["auc"] == pytest.approx(0.5)  # no signal
    assert results["auto"]["chosen"] != "fc8" and len(path) >= 2
    assert path[1]["gain"] > path[1]["noise"] > 0
    assert set(results["auto"]["seconds"]) == {s["depth"] for s in path}
    written = json.loads((tmp_path / "auto" / "results.json").read_text())
    assert written["test"]["headline"] == results["test"]["headline"]
    assert (tmp_path / "auto" / "predictions.csv").is_file()
    for step in path:  # every depth is a run of its own, with its validation scores
        sub = tmp_path / "auto" / "auto" / step["depth"]
        labels, scores = trainer.read_validation(sub)
        assert trainer.roc_auc(labels, scores) == pytest.approx(step["auc"])
        assert "test" not in json.loads((sub / "results.json").read_text())
    out = capsys.readouterr().out
    assert f"auto: chose tune_from={results['auto']['chosen']}" in out
