"""The study report on hand-made runs (SYNTHETIC predictions written in the real file formats):
its numbers are the runs' own, its paired tests equal ``ftjax.compare``'s on the same files, Holm
is applied per operating point, and the conclusions follow from tests whose outcome the data
were built to give."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from experiments import layerwise, study_report
from ftjax import trainer
from ftjax.metrics import compare_froc, holm
from ftjax.predictions import Predictions, compare, froc_hits, headline

FROC = {"kind": "froc", "name": "sensitivity at 1 FP/volume", "per": "volume", "at": 1.0,
        "operating_points": [0.5, 1.0, 2.0], "n_boot": 400, "seed": 0}
FACTS = {"reduced_fractions": (0.5,), "reduced_configs": ("conv1", "scratch"),
         "paper_depth": "deep", "figure": {"kind": "froc", "per": "volume"}}


def _froc(quality: float, seed: int, cases: int = 40) -> Predictions:
    """Each case: one lesion item scored about ``quality`` and four false positives."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("case", "cluster", "item", "truth", "score",
                                             "lesion")}
    for c in range(cases):
        scores = [quality + 0.3 * rng.normal(), *rng.uniform(0, 0.8, 4)]
        for i, s in enumerate(scores):
            cols["case"].append(f"v{c}")
            cols["cluster"].append(f"p{c // 2}")
            cols["item"].append(str(i))
            cols["truth"].append(int(i == 0))
            cols["score"].append(s)
            cols["lesion"].append(0 if i == 0 else -1)
    return Predictions("demo", True, FROC, {k: np.asarray(v) for k, v in cols.items()},
                       {f"v{c}": {"cluster": f"p{c // 2}", "lesions": 1} for c in range(cases)})


def _run(outdir: Path, config: str, fraction: float, pred: Predictions, val_auc_shift: float,
         seconds: float) -> study_report.Finished:
    """A finished run's directory: predictions, results.json, validation.npz, metrics.jsonl."""
    workdir = outdir / "runs" / f"{config}-f{fraction:g}-s0"
    workdir.mkdir(parents=True)
    pred.write(workdir)
    rng = np.random.default_rng(len(config) + int(100 * fraction))
    labels = np.arange(300) % 2
    scores = rng.normal(size=300) + val_auc_shift * labels
    trainer.write_validation(workdir, labels, np.c_[1 - 1 / (1 + np.exp(-scores)),
                                                    1 / (1 + np.exp(-scores))])
    val = trainer.roc_auc(labels, scores)
    results = {"test": {"headline": headline(pred).as_dict()}, "best_val_auc": val,
               "data": {"train_fraction_reached": fraction}, "synthetic": True,
               "timings": {"total_seconds": seconds}, "epochs_run": 2}
    (workdir / "results.json").write_text(json.dumps(results))
    with open(workdir / "metrics.jsonl", "w") as f:
        for e in (1, 2):
            f.write(json.dumps({"kind": "epoch", "epoch": e, "step": 10 * e,
                                "val_auc": val - 0.05 * (2 - e)}) + "\n")
    return study_report.Finished(config, fraction, 0, (workdir,), (results,))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def froc_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    # Test quality: conv1 best, scratch worst; with half the data conv1 holds, scratch collapses.
    # Validation: fc8 < fc7 = fc6 (same scores: no gain), so the walk stops at fc6 and keeps fc7.
    spec = [("fc8", 1.0, 0.3, 0.5, 60), ("fc7", 1.0, 0.6, 1.5, 70), ("fc6", 1.0, 0.65, 1.5, 80),
            ("conv1", 1.0, 1.2, 1.0, 200), ("scratch", 1.0, 0.7, 0.8, 220),
            ("conv1", 0.5, 1.15, 0.9, 100), ("scratch", 0.5, 0.0, 0.2, 110)]
    runs = [_run(out, c, f, _froc(q, seed=i), v, s) for i, (c, f, q, v, s) in enumerate(spec)]
    # fc6 is validated on exactly fc7's scores (a copy), so its gain is zero.
    (out / "runs" / "fc6-f1-s0" / "validation.npz").write_bytes(
        (out / "runs" / "fc7-f1-s0" / "validation.npz").read_bytes())
    sections = study_report.write("demo", out, runs, FACTS, layerwise.CONFIGS)
    return out, runs, sections


def test_operating_points_are_the_runs_own(froc_study):
    out, runs, _ = froc_study
    rows = _rows(out / "tables" / "operating_points.csv")
    for run in runs:
        mine = [r for r in rows if r["config"] == run.config
                and float(r["fraction"]) == run.fraction and r["headline"] == "True"]
        assert len(mine) == 1
        assert float(mine[0]["value"]) == \
            pytest.approx(run.results[0]["test"]["headline"]["value"])
    assert len(rows) == 3 * len(runs)  # three operating points each


def test_pairwise_tests_equal_ftjax_compare_and_are_holm_corrected(froc_study):
    out, _, sections = froc_study
    rows = _rows(out / "tables" / "pairwise.csv")
    full = [c for c in layerwise.CONFIGS if c in ("fc8", "fc7", "fc6", "conv1", "scratch")]
    assert len(rows) == 3 * len(full) * (len(full) - 1) // 2  # every pair at every point
    a, b = (Predictions.read(out / "runs" / f"{c}-f1-s0") for c in ("conv1", "scratch"))
    pair = compare(a, b, n_boot=400, seed=0)
    # The same resamples, drawn for the two runs alone: the normal-theory p from their SD.
    alone = compare_froc({"a": froc_hits(a), "b": froc_hits(b)}, FROC["operating_points"],
                         clusters=[c["cluster"] for c in a.cases.values()], n_boot=400)
    diffs = alone[("a", "b")].a.samples - alone[("a", "b")].b.samples
    for i, point in enumerate(["sensitivity at 0.5 FP/volume", "sensitivity at 1 FP/volume",
                               "sensitivity at 2 FP/volume"]):
        mine = next(r for r in rows if r["point"] == point and (r["a"], r["b"]) ==
                    ("conv1", "scratch"))
        assert float(mine["diff"]) == pytest.approx(pair["diff"][i])
        assert float(mine["diff_low"]) == pytest.approx(pair["diff_low"][i])
        z = pair["diff"][i] / np.std(diffs[:, i], ddof=1)
        assert float(mine["p"]) == pytest.approx(2 * stats.norm.sf(abs(z)))
        family = [r for r in rows if r["point"] == point]
        np.testing.assert_allclose([float(r["p_holm"]) for r in family],
                                   holm([float(r["p"]) for r in family]))


def test_the_conclusions_follow_the_paired_tests(froc_study):
    out, _, sections = froc_study
    c1, c2, c3, c4 = sections["verdicts"][0]
    # fc7 has the best validation AUC of the fine-tuned depths; it is the one tested vs scratch.
    assert "fc7 (the fine-tuned depth with the best validation AUC" in c1.statement
    reduced = _rows(out / "tables" / "reduced_data.csv")
    assert len(reduced) == 1 and reduced[0]["favours"] == "conv1"
    assert c2.verdict == "supported" and float(reduced[0]["p"]) < 0.05
    assert "best fine-tuned depth on sensitivity at 1 FP/volume: conv1" in c3.statement
    assert c3.verdict == "consistent"  # the paper's "deep" for this made-up application
    walk = sections["walks"][0]
    assert [s["depth"] for s in walk["path"]] == ["fc8", "fc7", "fc6"]
    assert walk["chosen"] == "fc7" and walk["walk_seconds"] == 60 + 70 + 80
    assert walk["sweep_seconds"] == 60 + 70 + 80 + 200
    assert c4.verdict == ("not supported" if walk["p"] < 0.05 else "supported")
    table = {(r["seed"], r["number"]): r["verdict"] for r in
             _rows(out / "tables" / "conclusions.csv")}
    assert table[("0", "2")] == "supported"
    names = {p.name for p in sections["figures"]}
    assert {"froc_demo_seed_0_synthetic_data.png",  # SYNTHETIC in every figure's title
            "intervals_demo_seed_0_synthetic_data_reduced_training_sets.png",
            "training_demo_seed_0_synthetic_data_convergence.png"} <= names
    assert all(p.stat().st_size > 1000 for p in sections["figures"])


def _boundary(offset: float, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    metric = {"kind": "boundary", "name": "mean absolute boundary error (um)", "n_boot": 300,
              "seed": 0, "group_by": "interface", "groups": {"1": "LI", "2": "MA"}}
    cols: dict[str, list] = {k: [] for k in ("case", "cluster", "item", "truth", "score",
                                             "interface")}
    cases = {}
    for s in range(6):
        for g, name in ((1, "LI"), (2, "MA")):
            case = f"s{s}/{name}"
            cases[case] = {"cluster": f"s{s}", "um_per_pixel": 10.0}
            for col in range(5):
                cols["case"].append(case)
                cols["cluster"].append(f"s{s}")
                cols["item"].append(str(col))
                cols["truth"].append(20.0)
                cols["score"].append(20.0 + g * offset + rng.normal(scale=0.1))
                cols["interface"].append(g)
    return Predictions("demo", True, metric, {k: np.asarray(v) for k, v in cols.items()}, cases)


def test_boundary_studies_report_each_interface_beside_the_papers_numbers(tmp_path):
    runs = [_run(tmp_path, c, 1.0, _boundary(off, i), val, 10) for i, (c, off, val) in
            enumerate((("fc8", 3.0, 0.5), ("conv1", 1.0, 1.5), ("scratch", 1.5, 1.0)))]
    facts = {"paper_table": {"title": "the paper", "columns": ("LI", "MA"), "unit": "um",
                             "rows": {"fc8": (101.0, 103.3), "conv1": (24.7, 31.2)}}}
    sections = study_report.write("demo", tmp_path, runs, facts, layerwise.CONFIGS)
    points = {(r["config"], r["point"]): r for r in sections["points"]}
    for run in runs:  # the headline is the run's own; LI and MA are hand-computed means
        pred = Predictions.read(run.workdirs[0])
        overall = points[(run.config, "mean absolute boundary error (um)")]
        assert overall["value"] == pytest.approx(run.results[0]["test"]["headline"]["value"])
        err = np.abs(pred.columns["score"] - pred.columns["truth"]) * 10
        for g, name in ((1, "LI"), (2, "MA")):
            sel = pred.columns["interface"] == g
            by_case = [err[sel & (pred.columns["case"] == c)].mean()
                       for c in np.unique(pred.columns["case"][sel])]
            assert points[(run.config, f"{name} error (um)")]["value"] == \
                pytest.approx(np.mean(by_case))
    paper = {r["config"]: r for r in _rows(tmp_path / "tables" / "paper_numbers.csv")}
    assert float(paper["fc8"]["paper_LI_um"]) == 101.0
    assert float(paper["conv1"]["ours_MA_um"]) == pytest.approx(
        points[("conv1", "MA error (um)")]["value"])
    c1 = sections["verdicts"][0][0]
    assert c1.verdict == "supported"  # conv1 (best on validation) errs less than scratch
    assert {p.name for p in sections["figures"]} >= {
        "boxplot_demo_seed_0_synthetic_data_li.png", "boxplot_demo_seed_0_synthetic_data_ma.png"}
