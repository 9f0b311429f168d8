"""The study harness (``experiments.layerwise``): the runs it plans from an app's study facts,
its command lines, and a tiny sweep on the fixture application killed part-way and restarted:
a finished run is never redone and the report's numbers are the runs' own."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import layerwise
from ftjax.apps import study_facts

TESTS = Path(__file__).parent
TRAIN = ["--input_size=67", "--batch_size=16", "--epochs=1", "--base_lr=0.01",
         "--eval_chunk=16", "--weights=random"]


def test_the_plan_holds_every_depth_and_the_papers_reduced_runs(capsys):
    runs = layerwise.plan(layerwise.CONFIGS, 2, dict(study_facts("pe")))
    assert len(runs) == 9 * 2 + 2 * 2 * 2  # nine depths; conv1 and scratch at 50% and 25%
    assert {r.config for r in runs if r.fraction < 1} == {"conv1", "scratch"}
    assert len({r.name for r in runs}) == len(runs)
    subset = layerwise.plan(["fc8", "scratch"], 1, dict(study_facts("frames")))
    assert [r.name for r in subset] == ["fc8-f1-s0", "scratch-f1-s0", "scratch-f0.1-s0",
                                        "scratch-f0.05-s0", "scratch-f0.01-s0"]
    layerwise.main(["--app=pe", "--outdir=/x", "--configs=fc8", "--print_commands",
                    "--weights=my.npz"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        "-m ftjax.train --app=pe --tune_from=fc8 --workdir=/x/runs/fc8-f1-s0 --seed=0 "
        "--train_fraction=1 --weights=my.npz")
    with pytest.raises(SystemExit):
        layerwise.main(["--app=pe", "--outdir=/x", "--configs=conv9"])


def _sweep(outdir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{TESTS.parent}"}
    return subprocess.Popen([sys.executable, "-m", "experiments.layerwise",
                             "--app=fixture_app:make", f"--outdir={outdir}", "--configs=scratch",
                             *TRAIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def test_a_sweep_killed_part_way_continues_and_reports_the_runs_numbers(tmp_path):
    first = tmp_path / "runs" / "scratch-f1-s0" / "results.json"
    proc = _sweep(tmp_path)
    deadline = time.monotonic() + 240
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[0][-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the run it had started
    proc.wait()
    assert not (tmp_path / "runs" / "scratch-f0.5-s0" / "results.json").exists()
    stamp = first.stat().st_mtime_ns
    again = _sweep(tmp_path)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out[-3000:]
    assert "1 of 2 runs already finished; 1 to run" in out
    assert first.stat().st_mtime_ns == stamp  # never redone
    with open(tmp_path / "tables" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["config"], float(r["fraction"])) for r in rows] == [("scratch", 1.0),
                                                                   ("scratch", 0.5)]
    for row in rows:
        name = f"scratch-f{float(row['fraction']):g}-s0"
        results = json.loads((tmp_path / "runs" / name / "results.json").read_text())
        assert float(row["value"]) == pytest.approx(results["test"]["headline"]["value"])
        assert float(row["fraction_reached"]) == results["data"]["train_fraction_reached"]
    text = (tmp_path / "report.md").read_text()
    assert "SYNTHETIC" in text and "2 of 2 runs finished" in text
    checkpoints = tmp_path / "runs" / "scratch-f0.5-s0" / "checkpoints"
    assert (checkpoints / "best").is_dir() and not (checkpoints / "latest").exists()


def test_folds_pool_every_test_fold_into_one_prediction_per_configuration(tmp_path):
    """--folds=2: each run once per fold, the folds' predictions pooled so that every case is
    tested exactly once, the pooled headline in the summary."""
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{TESTS.parent}"}
    r = subprocess.run([sys.executable, "-m", "experiments.layerwise", "--app=fixture_app:make",
                        f"--outdir={tmp_path}", "--configs=scratch", "--folds=2", "--jobs=2",
                        *TRAIN], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0 of 4 runs already finished" in r.stdout
    from ftjax.predictions import Predictions, concatenate, headline

    folds = [Predictions.read(tmp_path / "runs" / f"scratch-f1-s0-k{k}") for k in (0, 1)]
    assert not set(folds[0].cases) & set(folds[1].cases)
    pooled = concatenate(folds)
    assert len(pooled.cases) == 14  # all of the fixture's cases, each tested once
    with open(tmp_path / "tables" / "summary.csv") as f:
        summary = {(r["config"], float(r["fraction"])): r for r in csv.DictReader(f)}
    assert float(summary[("scratch", 1.0)]["mean"]) == pytest.approx(headline(pooled).value)
    assert "fold" in (tmp_path / "tables" / "runs.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("app", ["polyp", "frames", "cimt"])
def test_each_smoke_preset_gives_distinct_reduced_training_sets(app, cache):
    """The paper's reduced shares keep at least one case each and differ from one another
    (pe's units are its PEs, known only once its scans are generated: its sweep reports
    0.53 and 0.24 of them)."""
    from ftjax.apps import make_app
    from ftjax.data.splits import reduce_cases

    application = make_app(app)
    fit = application.cases("train")
    reached = [reduce_cases(fit, application.units(fit), f, 0)
               for f in study_facts(app)["reduced_fractions"]]
    assert all(len(kept) >= 1 for kept, _ in reached)
    assert len({share for _, share in reached}) == len(reached) and max(
        share for _, share in reached) < 1
