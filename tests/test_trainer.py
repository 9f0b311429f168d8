"""The training loop end to end on the fixture application (SYNTHETIC data): outputs, resume after
a kill, divergence, workdir protection, the evaluate CLI, and the command line's errors."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftjax import parallel, trainer
from ftjax.checkpoint import CheckpointError, Checkpoints
from ftjax.predictions import Predictions, compare, headline
from ftjax.trainer import make_config

TESTS = Path(__file__).parent
# Small network input (67 px: pool5 is 1x1) and random weights keep every step fast on CPU.
BASE = dict(tune_from="scratch", input_size=67, batch_size=16, epochs=2, base_lr=0.01,
            log_every=2, eval_chunk=16)


def _config(**kw):
    return make_config("fixture_app:make", "smoke", **(BASE | kw))


def _params(workdir, kind="latest"):
    ckpt = Checkpoints(workdir)
    try:
        state, meta = ckpt.restore(kind)
    finally:
        ckpt.close()
    return state["params"], meta


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    results = trainer.train_and_evaluate(_config(), workdir, quiet=True)
    return workdir, results


def test_run_writes_results_metrics_and_checkpoints(finished_run):
    workdir, results = finished_run
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["synthetic"] is True and "not a medical finding" in saved["note"]
    assert saved["config"]["tune_from"] == "scratch" and saved["versions"]["jax"] == jax.__version__
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert max(r["val_auc"] for r in epochs) == pytest.approx(saved["best_val_auc"])
    assert any(r["kind"] == "train" and r["images_per_s"] > 0 for r in rows)
    # the network learned the fixture task (bright blob vs noise)
    assert saved["best_val_auc"] > 0.8 and saved["test"]["headline"]["value"] > 0.8
    assert saved["test"]["num_items"] == 48
    assert saved["data"]["validation_cases"] == 2 and saved["data"]["training_cases"] == 6
    # lr decays by 0.95 per epoch
    assert epochs[1]["lr"] == pytest.approx(0.01 * 0.95 ** 2, rel=1e-5)


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(tmp_path, finished_run):
    reference, _ = _params(finished_run[0])
    workdir = tmp_path / "resumed"
    # A real kill: SIGKILL a training process once the first epoch's checkpoint is written.
    code = ("import sys, fixture_app, test_trainer as t; from ftjax import trainer; "
            "trainer.train_and_evaluate(t._config(), sys.argv[1], quiet=True)")
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(workdir)], env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (workdir / "checkpoints" / "latest").is_dir() and any(
                    p.name.isdigit() for p in (workdir / "checkpoints" / "latest").iterdir()):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (workdir / "results.json").exists()  # it really died before the end
    trainer.train_and_evaluate(_config(), workdir, quiet=True)
    resumed, meta = _params(workdir)
    assert meta["step"] == _params(finished_run[0])[1]["step"]
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigterm_saves_at_the_next_step_and_the_same_command_resumes(tmp_path, finished_run):
    """A preempted TPU VM or cloud GPU gets SIGTERM: the run saves at the next step boundary and
    exits (status 143, one line); the same command then ends where an uninterrupted run ends."""
    reference, _ = _params(finished_run[0])
    workdir = tmp_path / "preempted"
    # A checkpoint at every step (bookkeeping: the result is the same) so that the signal, sent
    # once the first one exists, finds most of the 12 steps still to run however fast they are.
    argv = [sys.executable, "-m", "ftjax.train", "--app=fixture_app:make",
            *(f"--{k}={v}" for k, v in BASE.items()), "--checkpoint_every=1",
            f"--workdir={workdir}"]
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    latest = workdir / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir()):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err[-2000:]
    assert "SIGTERM: saved the state at step" in out and "Traceback" not in err
    assert not (workdir / "results.json").exists()
    _, meta = _params(workdir)
    assert 0 < meta["step"] < _params(finished_run[0])[1]["step"]
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming from step {meta['step']}" in rerun.stdout
    chex.assert_trees_all_equal(_params(workdir)[0], reference)


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import errno

    import orbax.checkpoint as ocp

    real_save, calls = ocp.CheckpointManager.save, []

    def save_until_the_disk_fills(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) > 2:  # epoch 1 wrote best and latest; epoch 2 finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save_until_the_disk_fills)
    with pytest.raises(CheckpointError, match="No space left on device.*last complete"):
        trainer.train_and_evaluate(_config(), tmp_path, quiet=True)
    monkeypatch.undo()
    _, meta = _params(tmp_path)
    assert meta["epoch_done"] == 1
    assert not (tmp_path / "results.json").exists()


def test_a_run_that_died_between_the_best_and_the_latest_resumes_from_the_best(
        tmp_path, monkeypatch, capsys, finished_run):
    """The disk fills after epoch 1's best checkpoint is written, before its latest: the same
    command resumes from the best (the newer state), rewrites that step and ends as the
    uninterrupted run does."""
    import errno

    import orbax.checkpoint as ocp

    real_save, calls = ocp.CheckpointManager.save, []

    def latest_fails(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", latest_fails)
    with pytest.raises(CheckpointError):
        trainer.train_and_evaluate(_config(), tmp_path, quiet=True)
    monkeypatch.undo()
    assert not any((tmp_path / "checkpoints" / "latest").glob("[0-9]*"))
    capsys.readouterr()
    results = trainer.train_and_evaluate(_config(), tmp_path)
    assert "resuming from step" in capsys.readouterr().out
    assert results["best_val_auc"] == pytest.approx(finished_run[1]["best_val_auc"])
    assert results["test"]["headline"] == pytest.approx(finished_run[1]["test"]["headline"])


def test_stop_mid_epoch_and_resume_from_mid_epoch_checkpoint(tmp_path, finished_run):
    reference, _ = _params(finished_run[0])
    workdir = tmp_path / "mid"
    cfg = _config(checkpoint_every=3)
    out = trainer.train_and_evaluate(cfg, workdir, quiet=True, stop_after_steps=4)
    assert out == {"stopped_at_step": 4} and _params(workdir)[1]["step"] == 3
    trainer.train_and_evaluate(cfg, workdir, quiet=True)
    for a, b in zip(jax.tree.leaves(_params(workdir)[0]), jax.tree.leaves(reference),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    workdir, calls = tmp_path / "nan", [0]
    real_step = parallel.JitStrategy.step

    def step_going_bad(self, *args):  # the loss turns NaN in the second epoch
        trainable, opt_state, metrics = real_step(self, *args)
        calls[0] += 1
        return trainable, opt_state, metrics | ({"loss": jnp.nan} if calls[0] > 7 else {})

    monkeypatch.setattr(parallel.JitStrategy, "step", step_going_bad)
    with pytest.raises(trainer.TrainingError, match="loss became nan at step 8"):
        trainer.train_and_evaluate(_config(epochs=3), workdir, quiet=True)
    _, meta = _params(workdir)
    assert meta["epoch_done"] == 1 and meta["step"] == 6  # epoch 1's checkpoint, nothing later
    assert not (workdir / "results.json").exists()


def test_workdir_of_another_configuration_is_refused(finished_run):
    with pytest.raises(trainer.TrainingError, match="another configuration"):
        trainer.train_and_evaluate(_config(seed=7), finished_run[0], quiet=True)


def test_evaluate_rescoring_matches_the_run(finished_run, tmp_path):
    workdir, results = finished_run
    again = trainer.evaluate_checkpoint(workdir)
    assert again["test"]["headline"]["value"] == pytest.approx(
        results["test"]["headline"]["value"])
    with pytest.raises(FileNotFoundError, match="config.json"):
        trainer.evaluate_checkpoint(tmp_path)


def test_predictions_reproduce_the_headline_and_compare_two_runs(finished_run, tmp_path):
    """The predictions files alone give results.json's headline (AUC against scikit-learn), and
    two runs (another training seed, same data seed: the same test items) compare from their
    files with DeLong's paired test, without rescoring."""
    from sklearn.metrics import roc_auc_score

    workdir, results = finished_run
    pred = Predictions.read(workdir)
    assert len(pred) == 48 and pred.synthetic and pred.metric["kind"] == "roc"
    assert roc_auc_score(pred.columns["truth"], pred.columns["score"]) == pytest.approx(
        results["test"]["headline"]["value"], abs=1e-12)
    assert headline(pred).as_dict() == pytest.approx(results["test"]["headline"])
    other = tmp_path / "seed1_half"  # another seed, half the training cases: same test items
    half = trainer.train_and_evaluate(_config(seed=1, epochs=1, train_fraction=0.5), other,
                                      quiet=True)
    assert half["data"]["training_cases"] == 3 and half["data"]["train_fraction_reached"] == 0.5
    assert half["data"]["validation_cases"] == results["data"]["validation_cases"] == 2
    out = compare(pred, Predictions.read(other))
    assert out["diff"] == pytest.approx(out["a"]["value"] - out["b"]["value"])
    assert 0 <= out["delong_p_value"] <= 1 and 0 <= out["bootstrap_auc_p_value"] <= 1
    r = _cli("ftjax.compare", str(workdir), str(other))
    assert r.returncode == 0 and "DeLong" in r.stdout, r.stderr


def test_an_external_test_set_trains_on_every_case_of_data_and_tests_on_every_case_of_its_own(
        tmp_path):
    """--test_data: --data has no test split (its cases train and validate), the external set
    has nothing else (every case tests); the predictions cover all of the external cases."""
    results = trainer.train_and_evaluate(_config(test_data="synthetic", epochs=1), tmp_path,
                                         quiet=True)
    assert results["data"]["training_cases"] + results["data"]["validation_cases"] == 14
    assert results["test_data"] == "synthetic"
    assert set(Predictions.read(tmp_path).columns["case"]) == \
        {f"train{i}" for i in range(8)} | {f"test{i}" for i in range(6)}


def test_a_dense_application_runs_through_the_trainer(tmp_path):
    """An application whose test is not candidate scoring (cimt-like: every pixel classified,
    a boundary per column, error in micrometres) trains, selects and tests through the trainer."""
    import fixture_dense

    results = trainer.train_and_evaluate(
        make_config("fixture_dense:make", "smoke", **(BASE | {"epochs": 3})), tmp_path,
        quiet=True)
    test = results["test"]
    assert results["data"]["validation_metric"].startswith("pixel AUC")
    assert test["num_items"] == 3 * fixture_dense.COLS
    # Better than chance (a third of the image height), and the files give the same number:
    # a hand-computed mean over images of the mean |row error| x pixel size.
    assert test["headline"]["value"] < test["chance_error_um"]
    pred = Predictions.read(tmp_path)
    err = np.abs(pred.columns["truth"] - pred.columns["score"]) * fixture_dense.UM_PER_PIXEL
    by_case = [err[pred.columns["case"] == c].mean() for c in pred.cases]
    assert np.mean(by_case) == pytest.approx(test["headline"]["value"], rel=1e-12)
    assert headline(pred).as_dict() == pytest.approx(test["headline"])


def _cli(module, *args):
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--app=nope"], "unknown app 'nope'"),
    (["--app=cimt", "--app_options=dense=fast"], "dense='fast'"),
    (["--app=fixture_app:make", "--tune_from=conv9"], "tune_from"),
    (["--app=fixture_app:make", "--train_fraction=0"], "train_fraction"),
    (["--app=fixture_app:make", "--tune_from=conv3", "--weights=random"], "weights=random"),
    (["--app=fixture_app:make", "--folds=1"], "--folds=1"),
    (["--app=fixture_app:make", "--folds=3", "--fold=3"], "--fold=3"),
    (["--app=fixture_app:make", "--folds=2", "--test_data=synthetic"], "exclude each other"),
    (["--app=pe", "--test_data=cad-pe:/no/such/dir", "--tune_from=scratch"], "/no/such/dir"),
    ([], "--app is required"),
])
def test_cli_errors_are_clear(tmp_path, args, message):
    r = _cli("ftjax.train", *args, f"--workdir={tmp_path / 'w'}")
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()


def test_evaluate_cli_errors_are_clear(tmp_path):
    r = _cli("ftjax.evaluate", f"--workdir={tmp_path}")
    assert r.returncode == 1 and "config.json" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("tune_from, below", [("fc7", "fc6"), ("conv4", "conv3")])
def test_tuning_above_conv1_caches_the_frozen_trunk(tmp_path, capsys, cache, tune_from, below):
    """The frozen trunk is computed once; frozen layers stay exactly the given weights, and the
    run ends as the uncached one does (dropout on in both)."""
    from ftjax import layerwise, weights

    trunk = layerwise.init_params(None, "scratch", 2, "caffe", jax.random.key(5), size=67)
    weights.save(jax.device_get(trunk), tmp_path / "trunk.npz")
    cfg = _config(tune_from=tune_from, weights=str(tmp_path / "trunk.npz"), epochs=1)
    results = trainer.train_and_evaluate(cfg, tmp_path / "cached")
    out = capsys.readouterr().out
    assert f"frozen trunk (conv1..{below})" in out and f"steps start at {tune_from}" in out
    assert results["timings"]["trunk_seconds"] > 0
    params, meta = _params(tmp_path / "cached")
    for layer in layerwise.frozen_layers(tune_from):
        np.testing.assert_array_equal(params[layer]["kernel"], trunk[layer]["kernel"])
    assert not np.array_equal(params[tune_from]["kernel"], trunk[tune_from]["kernel"])
    uncached = trainer.train_and_evaluate(dataclasses.replace(cfg, cache_trunk_gib=0.0),
                                          tmp_path / "uncached", quiet=True)
    assert uncached["best_val_auc"] == pytest.approx(meta["best_auc"], abs=1e-5)
    chex.assert_trees_all_close(_params(tmp_path / "uncached")[0], params, rtol=1e-4,
                                atol=1e-5)


def test_a_workdir_without_checkpoints_takes_a_corrected_configuration(tmp_path):
    """A first attempt that failed before training (bad data, no weights) does not lock the
    workdir: the corrected command runs there."""
    with pytest.raises(ValueError, match="balanced patches, fewer than one batch"):
        trainer.train_and_evaluate(_config(batch_size=4096, epochs=1), tmp_path, quiet=True)
    results = trainer.train_and_evaluate(_config(epochs=1), tmp_path, quiet=True)
    assert results["config"]["batch_size"] == 16
