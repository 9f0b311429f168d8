"""The PE application on tiny SYNTHETIC scans (and tiny CAD-PE files): protocol, split by patient,
labels against the clot masks, the cached TFDS data set (reuse, nothing half-written), the FROC
evaluation and its predictions, bad input, one end-to-end training run, and prediction on new
cases without a reference."""

import dataclasses
import errno
import json
import os
import subprocess
import sys

import nrrd
import numpy as np
import pytest
from test_pe_readers import _write_cadpe

from ftjax import trainer
from ftjax.apps import Application, CandidateSource, PatchSource
from ftjax.apps.pe import app as pe_app
from ftjax.apps.pe.app import PEApp, PESettings, make
from ftjax.apps.pe.readers import PEDataError
from ftjax.apps.pe.synthetic import synthetic_scan
from ftjax.apps.pe.toboggan import find_candidates
from ftjax.apps.pe.vessel import vessel_axes, vessel_patches
from ftjax.data.patch_dataset import stratified_counts
from ftjax.metrics import CaseHits, froc_from_cases, sensitivity_at
from ftjax.predictions import Predictions, headline
from ftjax.trainer import make_config

# 6 scans of 24 x 48 x 48 voxels: 3 training, 1 validation and 2 test patients;
# 4 patches of 16 px per candidate.
TINY = PESettings(scans=6, shape=(24, 48, 48), test_fraction=0.34, widths_mm=(10.0, 20.0),
                  shift_fractions=(0.0,), rotations=2, patch_size=16, max_train_patches=200,
                  n_boot=200)


@pytest.fixture(scope="module")
def app(cache):
    app = PEApp(settings=TINY, log=None)
    app.dataset()  # generate once for the module
    return app


def test_the_benchmarks_disk_feed_reads_the_data_sets_training_patches(app):
    from experiments.bench.accelerator import disk_feed_rate

    rates = disk_feed_rate(app.dataset().path, batch=8, batches=3)
    assert rates["patches"] == len(app.training_patches(app.cases("train")))
    assert rates["read_patches_per_s"] > 0 and rates["batches_patches_per_s"] > 0


def test_protocol_and_split_by_patient(app):
    assert isinstance(app, Application)
    assert app.name == "pe" and app.classes == ("background", "pe") and app.synthetic
    train, val, test = app.cases("train"), app.cases("validation"), app.cases("test")
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    assert sorted(train + val + test) == sorted(f"synthetic-{i:05d}" for i in range(6))
    with pytest.raises(ValueError, match="unknown split"):
        app.cases("valid")
    # The data seed decides the split; the training seed is not the app's business.
    assert PEApp(settings=TINY, data_seed=1, log=None).cases("test") != test

    patches = app.training_patches(train[1:])
    assert isinstance(patches, PatchSource)
    assert patches[np.arange(3)].shape == (3, 16, 16, 3) and patches[np.arange(3)].dtype == np.uint8
    assert set(np.unique(patches.labels)) == {0, 1}
    assert set(np.unique(patches.cases)) <= {0, 1}
    # Training patches come from training patients only (the validation patient is split off
    # before the stratified sample is drawn); candidates from their own split.
    assert set(app.dataset().training().cases) <= set(train)
    candidates = app.validation_candidates(val)
    assert isinstance(candidates, CandidateSource)
    assert candidates.patches(np.array([0])).shape == (1, 4, 16, 16, 3)
    np.testing.assert_array_equal(candidates.labels, app.index("validation", val)["label"])
    assert set(app.index("test", test)["case"]) <= set(test)
    with pytest.raises(ValueError, match="not in the pe test split"):
        app.candidates("test", train[:1])
    with pytest.raises(ValueError, match="not in the pe train split"):
        app.training_patches(val)
    assert app.units(train).tolist() == [app.case_facts(c)["clots"] for c in train]


def test_labels_and_patches_agree_with_the_clot_masks(app):
    index = app.dataset().index("test")
    for case in app.cases("test"):
        scan = app.load_scan(case)
        rows = index["case"] == case
        centres = np.rint(index["centre"][rows]).astype(int)
        np.testing.assert_array_equal(index["clot"][rows], scan.clots[tuple(centres.T)])
        np.testing.assert_array_equal(index["label"][rows], index["clot"][rows] > 0)
        assert app.dataset().meta["cases"][case]["clots"] == scan.n_clots
    assert index["label"].sum() > 0

    train = app.dataset().training()
    true_candidates = 0
    assert set(train.cases) == set(app.cases("train"))
    for case in app.cases("train"):
        scan = app.load_scan(case)
        cands = find_candidates(scan.hu, scan.spacing)
        true_candidates += int(np.sum(scan.clots[tuple(np.rint(cands.centres).astype(int).T)] > 0))
        rows = np.flatnonzero(train.cases == case)
        centre = np.rint(cands.centres[train.candidates[rows]]).astype(int)
        np.testing.assert_array_equal(train.labels[rows], scan.clots[tuple(centre.T)] > 0)
    # Stratified: every positive (candidate, augmentation) pair is kept (they are fewer than half
    # of max_train_patches), negatives fill the rest.
    k = TINY.patches_per_candidate
    assert int(np.sum(train.labels == 1)) == true_candidates * k
    assert int(np.sum(train.labels == 0)) == TINY.max_train_patches - true_candidates * k
    assert app.dataset().meta["train_patches_per_class"] == {
        "0": TINY.max_train_patches - true_candidates * k, "1": true_candidates * k}
    # A stored patch is the (candidate, augmentation) it claims to be.
    r = int(np.flatnonzero(train.labels == 1)[0])
    scan = app.load_scan(str(train.cases[r]))
    cands = find_candidates(scan.hu, scan.spacing)
    from ftjax.apps.pe.toboggan import lumen_mask  # noqa: PLC0415

    axes = vessel_axes(cands, scan.spacing, lumen_mask(scan.hu, scan.spacing))
    c = train.candidates[r]
    again = vessel_patches(scan.hu, scan.spacing, cands.centres[c:c + 1], axes[c:c + 1],
                           TINY.widths_mm, TINY.shift_fractions, TINY.rotations, TINY.patch_size)
    np.testing.assert_array_equal(train.patches[r], again[0, train.augmentations[r]])


def test_stratified_counts_keep_rare_classes_whole():
    assert stratified_counts({0: 5000, 1: 20}, 200) == {0: 180, 1: 20}
    assert stratified_counts({0: 5000, 1: 900}, 200) == {0: 100, 1: 100}
    assert stratified_counts({0: 50, 1: 7, 2: 500}, 90) == {0: 41, 1: 7, 2: 42}
    assert stratified_counts({0: 3, 1: 4}, 100) == {0: 3, 1: 4}


def test_second_construction_reuses_the_cached_data_set(app, monkeypatch):
    calls = []
    monkeypatch.setattr(pe_app, "synthetic_scan", lambda *a, **k: calls.append(a) or
                        synthetic_scan(*a, **k))
    path = app.dataset().path
    stamp = (path / "meta.json").stat().st_mtime_ns
    again = PEApp(settings=TINY, log=None)
    assert again.dataset().path == path and calls == []  # nothing regenerated
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.training_patches(again.cases("train"))[np.arange(5)],
                                  app.training_patches(app.cases("train"))[np.arange(5)])
    # Any generation parameter, or the seed, gives another data set.
    other = PEApp(settings=dataclasses.replace(TINY, max_train_patches=100), log=None)
    assert other.spec().key() != app.spec().key()
    assert PEApp(settings=TINY, data_seed=1, log=None).spec().key() != app.spec().key()


@pytest.mark.parametrize("phase", ["table", "patches"])
def test_a_failure_leaves_no_data_set_behind(cache, monkeypatch, phase):
    """A corrupt scan while finding candidates, a full disk while the patches are written: the
    build fails with that error and leaves no cache entry, partial or not."""
    # A data set of its own per phase (another max_train_patches gives another cache key).
    settings = dataclasses.replace(TINY, max_train_patches=40 if phase == "table" else 41)
    real = getattr(pe_app._ScanPatches, phase)
    calls, half_written = [], []

    def failing(self, case, *args):
        calls.append(case)
        if len(calls) == 3:
            half_written.extend((cache / "datasets" / "pe").glob(".*.tmp-*/**/*.json"))
            if phase == "patches":
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            raise PEDataError(f"{case}.nrrd: not a readable NRRD file (injected)")
        return real(self, case, *args)

    monkeypatch.setattr(pe_app._ScanPatches, phase, failing)
    app = PEApp(settings=settings, log=None)
    stale = cache / "datasets" / "pe" / f".{app.spec().key()}.tmp-999999999-dead"
    stale.mkdir(parents=True)  # left by a killed process: cleaned up by the next build
    with pytest.raises(OSError if phase == "patches" else PEDataError, match="injected"):
        app.dataset()
    leftovers = [p.name for p in (cache / "datasets" / "pe").iterdir()
                 if app.spec().key() in p.name]
    assert leftovers == []
    # While cutting patches, TFDS had already written part of the data set, now gone.
    assert bool(half_written) == (phase == "patches")


def _case_hits(scores, clots, num_clots):
    return CaseHits.from_assignments(scores, np.where(clots > 0, clots, -1), num_clots)


def test_froc_of_perfect_and_random_scores(app, tmp_path):
    index = app.index("test", app.cases("test"))
    truth = (index["clot"] > 0).astype(float)
    perfect = app.test_result(index, np.stack([1 - truth, truth], 1), tmp_path)
    summary, gen = perfect.summary, perfect.summary["generator"]
    assert gen["n_candidates"] == len(truth) and summary["num_test_scans"] == 2
    assert gen["n_clots"] == sum(app.case_facts(c)["clots"] for c in app.cases("test"))
    # Every true candidate outranks every false one: each clot the generator found is detected
    # before the first false positive.
    assert summary["froc"]["network"]["sensitivity"][0] == pytest.approx(gen["sensitivity"])
    assert perfect.headline.value == pytest.approx(gen["sensitivity"])
    assert perfect.headline.name == "sensitivity at 2 FP/volume"
    assert (tmp_path / "froc_pe_synthetic_data.png").is_file() and perfect.predictions.synthetic
    assert "SYNTHETIC" in summary["data"]
    size = summary["froc"]["baseline: size"]
    assert size["low"][1] <= size["sensitivity"][1] <= size["high"][1]
    assert set(summary["network_minus_baseline"]) == {"baseline: size", "baseline: darkness"}

    rng = np.random.default_rng(0)
    random = rng.random(len(truth))
    res = app.test_result(index, np.stack([1 - random, random], 1), tmp_path)
    assert res.headline.value <= perfect.headline.value
    # Random scores, checked draw by draw against a direct count: the FROC at 2 FP/volume is the
    # share of clots with a candidate ranked above the (2 * n_scans + 1)-th false positive.
    scans = app.cases("test")
    clots_per_scan = {c: app.case_facts(c)["clots"] for c in scans}
    n_clots = sum(clots_per_scan.values())
    at_2 = []
    for _ in range(50):
        s = rng.random(len(truth))
        cases = [_case_hits(s[index["case"] == c], index["clot"][index["case"] == c],
                            clots_per_scan[c]) for c in scans]
        at_2.append(sensitivity_at(froc_from_cases(cases), [2.0])[0])
        order = np.argsort(-s)
        clot, case = index["clot"][order], index["case"][order]
        early = (clot > 0) & (np.cumsum(clot == 0) <= 2 * len(scans))
        assert at_2[-1] == pytest.approx(len(set(zip(case[early], clot[early], strict=True)))
                                         / n_clots)
    assert np.mean(at_2) < perfect.headline.value
    with pytest.raises(ValueError, match="probabilities of shape"):
        app.test_result(index, np.ones((3, 2)), tmp_path)


@pytest.mark.parametrize("spec, error, message", [
    ("nope", ValueError, "not a pe data source"),
    ("cadpe:", ValueError, "not a pe data source"),
    ("lidc:/tmp", ValueError, "not a pe data source"),
    ("cadpe:/no/such/dir", FileNotFoundError, "no such directory"),
])
def test_bad_data_specs_are_refused(spec, error, message):
    with pytest.raises(error, match=message):
        make(spec)


def test_bad_preset_and_cli_error(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        make("synthetic", "huge")
    r = subprocess.run([sys.executable, "-m", "ftjax.train", "--app=pe", "--data=fumpe:/no/dir",
                        f"--workdir={tmp_path / 'never_written'}"], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 1 and "no such directory" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "never_written").exists()


def _cadpe_folder(root, n=4):
    """n tiny SYNTHETIC scans written as CAD-PE NRRD files (x, y, z order, mm directions)."""
    for i in range(n):
        scan = synthetic_scan(i, shape=TINY.shape)
        header = {"space": "left-posterior-superior",
                  "space directions": np.diag(scan.spacing[::-1]), "encoding": "gzip"}
        _write_cadpe(root, f"{i:03d}", scan.hu.transpose(2, 1, 0).astype(np.int16),
                     scan.clots.transpose(2, 1, 0).astype(np.uint8), header)
    return root


def test_cadpe_data_on_tiny_nrrd_files(cache, tmp_path):
    root = _cadpe_folder(tmp_path / "cadpe")
    app = PEApp(f"cadpe:{root}", settings=TINY, log=None)
    every = sum((app.cases(s) for s in ("train", "validation", "test")), [])
    assert not app.synthetic and sorted(every) == ["000", "001", "002", "003"]
    meta = app.dataset().meta["cases"]
    assert {m["source"] for m in meta.values()} == {"cadpe"}
    for case in app.cases("test"):  # the same volumes as the synthetic scans they came from
        assert meta[case]["clots"] == synthetic_scan(int(case), shape=TINY.shape).n_clots
    index = app.index("test", app.cases("test"))
    truth = (index["clot"] > 0).astype(float)
    res = app.test_result(index, np.stack([1 - truth, truth], 1), tmp_path)
    assert res.predictions.synthetic is False and "cadpe" in res.summary["data"]
    if not res.summary["num_clots"]:  # a test set without clots: stated, not a crash
        assert np.isnan(res.headline.value) and "no clots" in res.summary["froc_note"]

    # A changed file is another data set; a corrupt one fails clearly and leaves nothing behind.
    image = root / "images" / "002.nrrd"
    image.write_bytes(image.read_bytes()[:-300])
    broken = PEApp(f"cadpe:{root}", settings=TINY, log=None)
    assert broken.spec().key() != app.spec().key()
    with pytest.raises(PEDataError, match=r"002\.nrrd.*corrupt or truncated"):
        broken.dataset()
    assert not [p for p in (cache / "datasets" / "pe").iterdir() if broken.spec().key() in p.name]


def test_cadpe_empty_mask_no_candidates_and_no_spacing(cache, tmp_path):
    root = _cadpe_folder(tmp_path / "cadpe", n=3)
    test_case = PEApp(f"cadpe:{root}", settings=TINY, log=None).cases("test")[0]
    empty_mask = next(c for c in ("000", "001", "002") if c != test_case)
    directions = {"space directions": np.diag([2.0, 2.0, 3.0])}
    nrrd.write(str(root / "rs" / f"{empty_mask}RefStd.nrrd"),  # valid: a scan without clots
               np.zeros(TINY.shape[::-1], np.uint8), directions)
    clot = np.zeros(TINY.shape[::-1], np.uint8)
    clot[20:24, 20:24, 10:12] = 1
    _write_cadpe(root, test_case, np.full(TINY.shape[::-1], -1000, np.int16), clot,
                 {"space directions": np.diag([2.0, 2.0, 3.0])})  # no contrast: no candidate
    app = PEApp(f"cadpe:{root}", settings=TINY, log=None)
    meta = app.dataset().meta
    assert meta["cases"][empty_mask]["clots"] == 0
    assert (meta["cases"][test_case]["candidates"], meta["cases"][test_case]["clots"]) == (0, 1)
    assert meta["records"]["test"] == 0  # nothing to store: the test split is left out
    cands = app.candidates("test", [test_case])
    assert len(cands) == 0 and cands.patches(np.arange(0)).shape == (0, 4, 16, 16, 3)
    res = app.test_result(app.index("test", [test_case]), np.zeros((0, 2)), tmp_path)
    # Its clot is missed, not skipped.
    assert res.summary["num_clots"] == 1 and res.summary["generator"]["sensitivity"] == 0.0
    assert res.summary["froc"]["network"]["sensitivity"] == [0.0] * 5

    data, _ = nrrd.read(str(root / "images" / f"{empty_mask}.nrrd"))
    nrrd.write(str(root / "images" / f"{empty_mask}.nrrd"), data, {"encoding": "gzip"})
    broken = PEApp(f"cadpe:{root}", settings=TINY, log=None)
    with pytest.raises(PEDataError, match=rf"{empty_mask}\.nrrd: no voxel spacing"):
        broken.dataset()
    assert not [p for p in (cache / "datasets" / "pe").iterdir() if broken.spec().key() in p.name]


def test_end_to_end_training_run_writes_the_froc_and_its_predictions(app, tmp_path):
    config = make_config("pe", "smoke", tune_from="scratch", input_size=67, batch_size=16,
                         epochs=1, base_lr=0.01, log_every=1, eval_chunk=16)
    results = trainer.train_and_evaluate(config, tmp_path, app=app, quiet=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["synthetic"] is True and "not a medical finding" in saved["note"]
    test = saved["test"]
    assert test["num_items"] == len(app.candidates("test", app.cases("test")))
    assert len(test["froc"]["network"]["sensitivity"]) == 5 == len(test["fp_per_volume"])
    assert 0 <= test["headline"]["value"] <= test["generator"]["sensitivity"]
    assert (tmp_path / "figures" / "froc_pe_synthetic_data.png").is_file()
    assert results["test"]["headline"] == test["headline"]
    assert saved["data"]["validation_metric"].startswith("candidate AUC (mean over 4 of the 4")
    # The predictions files alone give the headline: by a direct count (clots with a candidate
    # above the (2 * scans + 1)-th false positive) and by the same bootstrap.
    pred = Predictions.read(tmp_path)
    c = pred.columns
    order = np.argsort(-c["score"], kind="stable")
    hit = c["lesion"][order] >= 0
    early = hit & (np.cumsum(~hit) <= 2 * len(pred.cases))
    found = set(zip(c["case"][order][early], c["lesion"][order][early], strict=True))
    # The count is exact unless a tie straddles the cut (the (2 * scans + 1)-th false positive).
    values, counts = np.unique(c["score"], return_counts=True)
    false_scores = c["score"][order][~hit]
    cut = false_scores[2 * len(pred.cases)] if len(false_scores) > 2 * len(pred.cases) else -1
    assert cut not in values[counts > 1]
    assert len(found) / sum(v["lesions"] for v in pred.cases.values()) == pytest.approx(
        test["headline"]["value"])
    assert headline(pred).as_dict() == pytest.approx(test["headline"])


def test_predict_on_new_cases_without_a_reference(cache, tmp_path):
    """python -m ftjax.predict: a trained run on a CAD-PE folder without reference masks writes
    per case the scored candidates (CSV, JSON) and a figure."""
    root = _cadpe_folder(tmp_path / "train")
    workdir = tmp_path / "run"
    config = make_config("pe", "smoke", data=f"cadpe:{root}", tune_from="scratch",
                         input_size=67, batch_size=8, epochs=1, log_every=5, eval_chunk=16)
    trainer.train_and_evaluate(config, workdir, app=PEApp(f"cadpe:{root}", TINY, log=None),
                               quiet=True)
    new = tmp_path / "new"
    (new / "images").mkdir(parents=True)
    for name in ("000", "003"):  # images only: no rs/ reference folder
        (new / "images" / f"{name}.nrrd").write_bytes(
            (root / "images" / f"{name}.nrrd").read_bytes())
    r = subprocess.run([sys.executable, "-m", "ftjax.predict", f"--workdir={workdir}",
                        f"--data=cadpe:{new}", f"--out={tmp_path / 'out'}"], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, FTJAX_CACHE=str(cache)))
    assert r.returncode == 0, r.stderr
    for name in ("000", "003"):
        rows = (tmp_path / "out" / f"{name}.csv").read_text().splitlines()
        assert rows[0].split(",")[:4] == ["candidate", "z", "y", "x"]
        assert rows[0].split(",")[-1] == "score" and len(rows) > 1
        scores = [float(line.split(",")[-1]) for line in rows[1:]]
        assert all(0 <= v <= 1 for v in scores)
        listed = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert listed["case"] == name and len(listed["candidates"]) == len(rows) - 1
        assert (tmp_path / "out" / f"{name}.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "ftjax.predict", f"--workdir={tmp_path}",
                          f"--data=cadpe:{new}", f"--out={tmp_path / 'o2'}"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "config.json" in bad.stderr and "Traceback" not in bad.stderr


def test_presets_and_study_facts_read_without_importing_the_app():
    """The trainer and the study harness read an app's presets as data: no TFDS, no app code."""
    code = ("import sys; from ftjax.apps import study_facts, train_presets; "
            "f = study_facts('pe'); t = train_presets('pe'); "
            "print(f['reduced_fractions'], t['smoke']['batch_size'], "
            "'ftjax.apps.pe.app' in sys.modules, 'tensorflow_datasets' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(0.5,", "0.25)", "8", "False", "False"]
    assert pe_app.FP_RATES == (1.0, 2.0, 3.0, 4.0, 5.0)  # PAPER.md: 1..5 FP/volume
