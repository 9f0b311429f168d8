"""Hostile and broken command lines: every one ends in one line ``error: ...`` naming the flag or
file, exit status 1, no traceback, in bounded time, and creates nothing (no workdir, no
config.json). Cases run in one long-lived worker process per command (tests/cli_worker.py), so the
imports are paid once.

Family "command-line flags": at least 30 generated train command lines (hypothesis,
derandomized) plus the named regressions of the reliability issue, and broken run directories
for evaluate, predict and compare.
"""

import dataclasses
import json
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftjax.config import TrainConfig

TESTS = Path(__file__).parent
GENERATED = 40  # generated train command lines (at least 30)

# Field -> values that are invalid for it, by construction.
_NEGATIVE = st.integers(max_value=-1)
_NONPOSITIVE = st.integers(max_value=0)
_NOT_A_NUMBER = st.text(string.ascii_letters, min_size=1, max_size=6)
_NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "1e400"])
_INVALID = {
    "epochs": _NONPOSITIVE, "batch_size": _NONPOSITIVE, "patience": _NONPOSITIVE,
    "log_every": _NONPOSITIVE, "eval_chunk": _NONPOSITIVE, "checkpoint_every": _NEGATIVE,
    "seed": st.one_of(_NEGATIVE, st.integers(min_value=2**31, max_value=2**70)),
    "data_seed": _NEGATIVE,
    "input_size": st.one_of(_NEGATIVE, st.integers(1, 62), st.integers(1025, 10**6)),
    "train_fraction": st.one_of(st.floats(max_value=0), st.floats(min_value=1.0001, max_value=1e9),
                                _NON_FINITE),
    "val_fraction": st.one_of(st.floats(max_value=0), st.floats(min_value=1, max_value=1e9),
                              _NON_FINITE),
    "base_lr": st.one_of(st.floats(max_value=0), st.floats(min_value=10.001, max_value=1e30),
                         _NON_FINITE),
    "momentum": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1, max_value=1e9),
                          _NON_FINITE),
    "weight_decay": st.one_of(st.floats(max_value=-1e-9), _NON_FINITE),
    "fc8_lr_mult": st.one_of(st.floats(max_value=-1e-9), _NON_FINITE),
    "bias_lr_mult": st.one_of(st.floats(max_value=-1e-9), _NON_FINITE),
    "lr_decay_per_epoch": st.one_of(st.floats(max_value=0), st.floats(min_value=1.0001,
                                                                      max_value=1e9), _NON_FINITE),
    "cache_trunk_gib": st.one_of(st.floats(max_value=-1e-9), _NON_FINITE),
    "tune_from": _NOT_A_NUMBER, "arch": _NOT_A_NUMBER, "preset": _NOT_A_NUMBER,
    "parallel": _NOT_A_NUMBER,
}
_NUMERIC = [f.name for f in dataclasses.fields(TrainConfig) if f.type in ("int", "float")]
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _value(v):
    return repr(v) if isinstance(v, float) and v == v and abs(v) != float("inf") else str(v)


@st.composite
def _bad_train_argv(draw):
    """One invalid flag (or a text where a number belongs, an unknown flag, a stray word) on an
    otherwise cheap, valid command line of the fixture application."""
    kind = draw(st.sampled_from(["value", "value", "value", "text", "unknown", "stray"]))
    if kind == "value":
        name = draw(st.sampled_from(sorted(_INVALID)))
        return [f"--{name}={_value(draw(_INVALID[name]))}"], name
    if kind == "text":
        name = draw(st.sampled_from(_NUMERIC))
        return [f"--{name}={draw(_NOT_A_NUMBER)}"], name
    if kind == "unknown":
        name = draw(st.text(string.ascii_lowercase, min_size=3, max_size=8).filter(
            lambda n: n not in _FIELDS and not n.startswith(("help", "verbose", "workdir", "no"))))
        return [f"--{name}=1"], name
    word = draw(st.text(string.ascii_letters, min_size=1, max_size=6))
    return [word], word


_CASES: list = []


@settings(derandomize=True, max_examples=GENERATED, database=None, deadline=None)
@given(_bad_train_argv())
def _collect(case):
    _CASES.append(case)


def _run(module, cases, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get(
        "PYTHONPATH", "")]), "FTJAX_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, str(TESTS / "cli_worker.py"), module],
                       input=json.dumps(cases), capture_output=True, text=True, env=env,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _assert_clean_error(result, mention=None):
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 1, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    assert "Traceback" not in result["stderr"] and "UNCAUGHT" not in result["stderr"], result
    assert result["seconds"] < 60, result
    if mention:
        assert mention in lines[0], result


def test_generated_and_named_train_command_lines(tmp_path):
    _CASES.clear()
    _collect()
    assert len(_CASES) >= 30
    work = tmp_path / "w"
    base = ["--app=fixture_app:make", "--tune_from=scratch", f"--workdir={work}"]
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(300))
    named = [  # the reliability issue's findings, each by name
        (["--seed=-1"], "--seed"), (["--input_size=-5"], "--input_size"),
        (["--base_lr=-1"], "--base_lr"), (["--momentum=nan"], "--momentum"),
        (["--app=nosuchmod:make"], "nosuchmod"), (["--app=os:getcwd"], "--app=os:getcwd"),
        (["--app=os:sep"], "os:sep"), (["--app=json:loads"], "json:loads"),
        (["--app=pe", "--app_options=nope=1"], "has no setting 'nope'"),
        ([f"--workdir={a_file}"], "not a directory"),
        ([f"--workdir={a_file}/sub"], "a_file"),
        (["--distributed"], "--distributed"),
        (["--batch_size=12"], "--batch_size=12"),  # 8 simulated devices
        (["--tune_from=conv3", "--weights=random"], "--weights=random"),
        (["--tune_from=conv3", f"--weights={tmp_path / 'missing.npz'}"], "missing.npz"),
        (["--tune_from=conv3", f"--weights={garbage}"], "garbage.npz"),
        (["--tune_from=conv3", f"--weights={tmp_path}"], str(tmp_path)),
        (["--app=pe", "--data=nope:/tmp"], "--data"),
        (["--app=pe", "--data=cadpe:"], "--data"),
        (["--app=pe", f"--data=cadpe:{tmp_path / 'none'}"], "none"),
        (["--app=pe", f"--data=fumpe:{a_file}"], "a_file"),
    ]
    cases = [base + argv for argv, _ in _CASES] + [base + argv for argv, _ in named]
    results = _run("ftjax.train", cases, tmp_path)
    for result, (_, mention) in zip(results, _CASES + named, strict=True):
        _assert_clean_error(result, mention)
    assert not work.exists()  # no run that failed created its workdir (or a config.json)
    print(f"command-line family: {len(results)} train command lines "
          f"({len(_CASES)} generated, {len(named)} named)")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch fixture run whose files the broken-run cases damage copies of."""
    from ftjax import trainer

    sys.path.insert(0, str(TESTS))
    workdir = tmp_path_factory.mktemp("finished")
    trainer.train_and_evaluate(trainer.make_config(
        "fixture_app:make", "smoke", tune_from="scratch", input_size=67, batch_size=16,
        epochs=1, base_lr=0.01, log_every=2, eval_chunk=16), workdir, quiet=True)
    return workdir


def _damaged(src, dst, how):
    import shutil

    shutil.copytree(src, dst)
    cfg = dst / "config.json"
    best = next((dst / "checkpoints" / "best").glob("[0-9]*"))
    if how == "corrupt_config":
        cfg.write_text(cfg.read_text()[:40])
    elif how == "list_config":
        cfg.write_text("[1, 2, 3]")
    elif how == "unknown_key":
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "learning_rate": 1}))
    elif how == "bad_value":
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "epochs": "many"}))
    elif how == "no_state":
        shutil.rmtree(best / "state")
    elif how == "truncated":
        for f in (best / "state").rglob("*"):
            if f.is_file() and f.stat().st_size > 64:
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    elif how == "no_checkpoint":
        shutil.rmtree(dst / "checkpoints")
    return dst


BROKEN = ["corrupt_config", "list_config", "unknown_key", "bad_value", "no_state", "truncated",
          "no_checkpoint"]


def test_evaluate_predict_compare_on_broken_runs(finished, tmp_path):
    runs = {how: _damaged(finished, tmp_path / how, how) for how in BROKEN}
    evaluate = [[f"--workdir={runs[h]}"] for h in BROKEN] + [
        [f"--workdir={tmp_path / 'absent'}"], [], ["--workdir"], ["stray"]]
    results = _run("ftjax.evaluate", evaluate, tmp_path)
    for how, result in zip(BROKEN, results, strict=False):
        _assert_clean_error(result, str(runs[how].name))
    for result in results[len(BROKEN):]:
        _assert_clean_error(result)
    predict = [[f"--workdir={runs['no_checkpoint']}", "--data=synthetic"],
               [f"--workdir={runs['unknown_key']}", "--data=synthetic"],
               [f"--workdir={finished}"], [f"--workdir={finished}", "--data=nope:/x"]]
    for result in _run("ftjax.predict", predict, tmp_path):
        _assert_clean_error(result)
    bad_pred = tmp_path / "bad_predictions"
    bad_pred.mkdir()
    (bad_pred / "predictions.csv").write_text("case,cluster\nx")
    (bad_pred / "predictions.json").write_text("{")
    compare = [[str(finished)], [str(finished), str(tmp_path / "absent")],
               [str(finished), str(bad_pred)], [str(bad_pred), str(finished)]]
    for result in _run("ftjax.compare", compare, tmp_path):
        _assert_clean_error(result)
    print(f"command-line family: {len(evaluate) + len(predict) + len(compare)} evaluate, "
          "predict and compare command lines on broken runs")
