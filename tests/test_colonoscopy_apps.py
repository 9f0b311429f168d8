"""The ``polyp`` and ``frames`` applications on tiny SYNTHETIC videos and on files written in the
public layouts: splits, labels against the masks, stored patches against the cutters, the
metrics against hand-made scores, a run through the trainer, and bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from ftjax.apps import ArrayCandidates, make_app, study_facts, train_presets
from ftjax.apps.colonoscopy.readers import SPLIT_BY_IMAGE, ColonoscopyDataError
from ftjax.apps.colonoscopy.synthetic import synthetic_video
from ftjax.apps.colonoscopy.videos import SEEDS_PER_DATA_SEED
from ftjax.apps.frames.app import PRESETS as FRAMES_PRESETS
from ftjax.apps.frames.app import FramesApp, FramesSettings
from ftjax.apps.polyp.app import PolypApp, PolypSettings
from ftjax.apps.polyp.detector import DetectorConfig
from ftjax.data.patch_dataset import DatasetError
from ftjax.metrics import roc_auc
from ftjax.patches.planar import candidate_patches
from ftjax.predictions import Predictions, headline
from ftjax.trainer import make_config, train_and_evaluate

SEED = 4  # a data seed whose tiny training, validation and test videos all show polyps
DETECTOR = DetectorConfig(sigma=1.0, radii=(3.0, 24.0), nms_distance=6.0, evidence_radius=5.0,
                          max_candidates=4)
# 6 videos of 12 frames at 96 x 128: 3 training, 1 validation and 2 test videos.
TINY_POLYP = PolypSettings(videos=6, frames_per_video=12, shape=(96, 128), test_fraction=0.34,
                           detector=DETECTOR, patch_size=16, max_train_patches=240, n_boot=200,
                           validation_augmentations=(0,), score_augmentations=(0, 44, 84))
TINY_FRAMES = FramesSettings(videos=6, frames_per_video=10, shape=(80, 96), test_fraction=0.34,
                             crop_size=67, train_crops=3, validation_crops=2, test_crops=3,
                             n_boot=200)
RUN = dict(tune_from="scratch", weights="random", input_size=67, batch_size=16, epochs=1,
           log_every=50, eval_chunk=16)


@pytest.fixture(scope="module")
def polyp(cache):
    app = PolypApp(settings=TINY_POLYP, data_seed=SEED, log=None)
    app.dataset()
    return app


@pytest.fixture(scope="module")
def frames(cache):
    app = FramesApp(settings=TINY_FRAMES, data_seed=SEED, log=None)
    app.dataset()
    return app


def _video(app, case):
    s = app.settings
    return synthetic_video(SEED * SEEDS_PER_DATA_SEED + int(case.split("-")[1]),
                           n_frames=s.frames_per_video, shape=s.shape,
                           informative_only=isinstance(app, PolypApp))


# ----------------------------------------------------------------------------------- polyp
def test_polyp_splits_by_video_and_labels_follow_the_masks(polyp):
    splits = {k: polyp.cases(k) for k in ("train", "validation", "test")}
    assert [len(v) for v in splits.values()] == [3, 1, 2]
    assert not set().union(*map(set, splits.values())) ^ set(polyp.list_cases())
    index = polyp.index("test", splits["test"])
    assert len(index["case"]) and set(index["case"]) <= set(splits["test"])
    for case in splits["test"]:
        video, rows = _video(polyp, case), np.flatnonzero(index["case"] == case)
        frame, centre = index["frame"][rows], index["centre"][rows]
        y, x = np.rint(centre).astype(int).T
        expected = video.masks[frame, y, x]
        np.testing.assert_array_equal(index["polyp"][rows], expected)
        np.testing.assert_array_equal(index["label"][rows], expected > 0)
        facts = polyp.case_facts(case)
        assert facts["polyps_per_frame"] == [len(np.unique(m[m > 0])) for m in video.masks]
    assert sum(sum(polyp.case_facts(c)["polyps_per_frame"]) for c in splits["test"]) > 0


def test_polyp_stores_only_the_scored_patches_and_they_are_the_cutters(polyp):
    cases = polyp.cases("test")
    index = polyp.index("test", cases)
    stored = polyp.candidates("test", cases)
    got = stored.patches(np.arange(2))
    assert got.shape == (2, 3, 16, 16, 3)
    case = index["case"][0]
    frame = _video(polyp, case).frames[index["frame"][0]]
    want = np.asarray(candidate_patches(frame, index["centre"][:1], index["box"][:1],
                                        patch_size=16))[0]
    np.testing.assert_array_equal(got[0], want[[0, 44, 84]])
    # the validation split holds the union of what is scored; patch 1 is never stored
    with pytest.raises(DatasetError, match="not stored"):
        polyp.dataset().candidates("test", index["row"], index["label"], (1,))


def test_polyp_froc_per_frame_of_perfect_scores_and_the_estimable_rule(polyp, tmp_path):
    index = polyp.index("test", polyp.cases("test"))
    truth = index["label"].astype(float)
    result = polyp.test_result(index, np.stack([1 - truth, truth], 1), tmp_path)
    s = result.summary
    assert s["num_test_frames"] == 24 and s["estimable"] == [False, False, True]
    net = s["froc"]["network"]["sensitivity"]
    assert net[:2] == [None, None]
    assert net[2] == pytest.approx(s["detector"]["sensitivity"])  # every true candidate first
    assert "not estimable" in result.headline.name and np.isnan(result.headline.value)
    pred = result.predictions
    assert set(pred.cases) == {f"{c}/{t:04d}" for c in polyp.cases("test") for t in range(12)}
    assert {v["cluster"] for v in pred.cases.values()} == set(polyp.cases("test"))
    assert os.path.exists(s["figure"])
    # the same predictions judged at an estimable rate: the headline recomputes from the file
    pred.write(tmp_path)
    again = Predictions.read(tmp_path)
    moved = dataclasses.replace(again, metric=again.metric | {"at": 0.1})
    assert headline(moved).value == pytest.approx(net[2])


def test_polyp_reduction_unit_is_the_video(polyp):
    np.testing.assert_array_equal(polyp.units(polyp.cases("train")), [1, 1, 1])


# ----------------------------------------------------------------------------------- frames
def test_frames_crops_are_slices_of_the_stored_frames(frames):
    cases = frames.cases("train")
    fit = frames.training_patches(cases)
    stored = frames.dataset().training()
    assert len(fit) == 3 * len(stored) and fit.labels.tolist() == np.repeat(stored.labels,
                                                                             3).tolist()
    idx = np.array([0, 4, len(fit) - 1])
    crops = np.asarray(fit[idx])
    for k, i in enumerate(idx):
        y, x = fit.offsets[i]
        np.testing.assert_array_equal(crops[k], stored.patches[i // 3][y:y + 67, x:x + 67])
    val = frames.validation_candidates(frames.cases("validation"))
    got = val.patches(np.arange(2))
    assert got.shape == (2, 2, 67, 67, 3)
    frame = val.stored.patches(np.array([1]))[0, 0]
    y, x = val.offsets[1, 1]
    np.testing.assert_array_equal(got[1, 1], frame[y:y + 67, x:x + 67])


def test_frames_labels_and_baselines_follow_the_videos(frames):
    case = frames.cases("test")[0]
    index = frames.index("test", [case])
    video = _video(frames, case)
    np.testing.assert_array_equal(index["label"], video.informative)
    assert frames.units([case]).tolist() == [10.0]


def test_frames_roc_against_scikit_learn_and_paired_baselines(frames, tmp_path):
    index = frames.index("test", frames.cases("test"))
    rng = np.random.default_rng(0)
    p = np.clip(index["label"] * 0.3 + rng.uniform(0, 0.7, len(index["label"])), 0, 1)
    result = frames.test_result(index, np.stack([1 - p, p], 1), tmp_path)
    sklearn = pytest.importorskip("sklearn.metrics")
    assert result.headline.value == pytest.approx(sklearn.roc_auc_score(index["label"], p))
    roc = result.summary["roc"]
    assert roc["baseline: Laplacian variance"]["auc"] == pytest.approx(
        roc_auc(index["label"], index["laplacian"]))
    assert set(result.summary["network_vs_baselines"]) == {
        "baseline: Laplacian variance", "baseline: exposure score"}
    assert os.path.exists(result.summary["figure"])


def test_smoke_presets_hold_the_issue_sizes(cache):
    polyp = PolypApp(log=None)  # the smoke preset; nothing is generated
    test = polyp.cases("test")
    assert len(test) >= 6 and len(test) * polyp.settings.frames_per_video >= 300
    assert polyp.patches_per_scored_candidate == 6 and polyp.settings.patches_per_candidate == 120
    frames = FramesApp(log=None)
    assert len(frames.cases("test")) >= 6 and frames.settings.crop_size == 99


def test_frames_presets_crop_at_the_network_input():
    for preset, settings in FRAMES_PRESETS.items():
        assert train_presets("frames")[preset]["input_size"] == settings.crop_size
    assert study_facts("frames")["reduced_fractions"] == (0.1, 0.05, 0.01)
    assert study_facts("polyp")["operating_points"] == (0.001, 0.01, 0.1)


# ---------------------------------------------------------------------- through the trainer
@pytest.mark.parametrize("name", ["polyp", "frames"])
def test_a_run_through_the_trainer_writes_results_and_predictions(request, name, tmp_path):
    app = request.getfixturevalue(name)
    results = train_and_evaluate(make_config(name, "smoke", **RUN), tmp_path, app=app,
                                 quiet=True)
    assert results["synthetic"] and "SYNTHETIC" in results["note"]
    written = json.loads((tmp_path / "results.json").read_text())
    pred = Predictions.read(tmp_path)
    again = headline(pred)
    stated = written["test"]["headline"]
    assert stated["name"] == again.name
    assert np.allclose([stated["value"]], [again.value], equal_nan=True)
    assert written["data"]["reduction_unit"] == app.reduction_unit


# --------------------------------------------------------------------- public layouts on disk
def _write_cvc(root, n=4):
    """n frames of a SYNTHETIC video written as CVC-ClinicDB TIFFs (no sequence CSV)."""
    video = synthetic_video(3, n_frames=n, shape=(96, 128), informative_only=True, polyps=2)
    for d in ("Original", "Ground Truth"):
        (root / d).mkdir(parents=True)
    for i in range(n):
        tifffile.imwrite(root / "Original" / f"{i + 1}.tif", video.frames[i])
        tifffile.imwrite(root / "Ground Truth" / f"{i + 1}.tif",
                         (video.masks[i] > 0).astype(np.uint8) * 255)
    return root


def test_polyp_on_cvc_clinicdb_files_splits_by_image(cache, tmp_path):
    lines = []
    settings = dataclasses.replace(TINY_POLYP, max_cases=None)
    app = PolypApp(f"cvc-clinicdb:{_write_cvc(tmp_path)}", settings, log=lines.append)
    assert any(SPLIT_BY_IMAGE in line for line in lines)
    assert app.list_cases() == ["1", "2", "3", "4"]
    index = app.index("test", app.cases("test"))
    result = app.test_result(index, np.full((len(index["case"]), 2), 0.5), tmp_path)
    assert result.summary["split"] == SPLIT_BY_IMAGE
    print("detector on the cvc-clinicdb layout:", result.summary["detector"])
    assert result.summary["detector"]["candidates_per_frame"] > 0


def _write_folder(root, labels):
    for i, informative in enumerate(labels):
        cls = "informative" if informative else "non-informative"
        (root / cls).mkdir(parents=True, exist_ok=True)
        rgb = np.random.default_rng(i).integers(0, 255, (60, 80, 3), np.uint8)
        Image.fromarray(rgb).save(root / cls / f"v{i % 3}_{i:03d}.jpg")
    return root


def test_frames_on_a_folder_resizes_to_the_preset_and_splits_by_video(cache, tmp_path):
    app = FramesApp(f"folder:{_write_folder(tmp_path, [1, 0, 1, 0, 1, 0])}", TINY_FRAMES,
                    log=None)
    assert sorted(app.list_cases()) == ["v0", "v1", "v2"]
    assert app.dataset().patch_shape == (80, 96, 3)


def test_frames_predict_scores_each_frame_by_its_crops(cache, tmp_path):
    import jax

    from ftjax import layerwise
    from ftjax.models.alexnet import AlexNet
    from ftjax.scoring import Scorer

    app = FramesApp(f"folder:{_write_folder(tmp_path / 'data', [1, 0, 1, 0, 1, 0])}",
                    TINY_FRAMES, log=None)
    params = layerwise.init_params(None, "scratch", 2, "caffe", jax.random.key(0), size=67)
    scorer = Scorer(AlexNet(num_classes=2), params, size=67)
    written = app.predict(scorer, tmp_path / "out")
    assert [p.name for p in written] == ["v0.csv", "v1.csv", "v2.csv"]
    rows = json.loads((tmp_path / "out" / "v0.json").read_text())["candidates"]
    assert [r["frame"] for r in rows] == ["informative/v0_000", "non-informative/v0_003"]
    crops = app.scored(ArrayCandidates(app.producer(False).patches("v0", np.arange(2)),
                                       np.zeros(2, np.int32)), "test")
    expected = scorer.score(crops)[:, 1]
    assert [r["score"] for r in rows] == pytest.approx(expected.tolist(), abs=1e-6)
    assert (tmp_path / "out" / "v0.png").exists()


def test_bad_input_is_one_line_naming_the_file_and_leaves_no_cache(cache, tmp_path):
    root = _write_cvc(tmp_path / "cvc")
    (root / "Original" / "3.tif").write_bytes(b"II*\x00 not a tiff")
    app = PolypApp(f"cvc-clinicdb:{root}", dataclasses.replace(TINY_POLYP, max_cases=None),
                   log=None)
    with pytest.raises(ColonoscopyDataError, match="3.tif"):
        app.dataset()
    assert not list((cache / "datasets" / "polyp").glob(f"*{app.spec().key()}*"))
    # a mask of another size than its frame, found while the data set is generated
    root = _write_cvc(tmp_path / "cvc2")
    tifffile.imwrite(root / "Ground Truth" / "2.tif", np.zeros((96, 120), np.uint8))
    app = PolypApp(f"cvc-clinicdb:{root}", dataclasses.replace(TINY_POLYP, max_cases=None),
                   log=None)
    with pytest.raises(ColonoscopyDataError, match=r"Ground Truth/2.tif: mask size 96x120"):
        app.dataset()
    assert not list((cache / "datasets" / "polyp").glob(f"*{app.spec().key()}*"))
    # one class only: refused when listed, naming the folder
    with pytest.raises(ColonoscopyDataError, match="non-informative"):
        FramesApp(f"folder:{_write_folder(tmp_path / 'one', [1, 1, 1])}", TINY_FRAMES,
                  log=None)
    # through the command line: one line, no traceback, no work directory
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "ftjax.train", "--app=polyp",
                        f"--data=etis-larib:{empty}", f"--workdir={tmp_path / 'run'}"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert str(empty) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_app_options_override_the_preset_settings(cache):
    from ftjax.apps.candidates import with_options
    from ftjax.apps.frames.app import SMOKE as FRAMES_SMOKE
    from ftjax.apps.polyp.app import SMOKE as POLYP_SMOKE

    s = with_options(FRAMES_SMOKE, "train_crops=50, test_crops=7,shape=120:160", "frames")
    assert (s.train_crops, s.test_crops, s.shape) == (50, 7, (120, 160))
    p = with_options(POLYP_SMOKE, "detector.max_candidates=3,score_augmentations=none,"
                                  "validation_augmentations=none,scales=1.0:1.5", "polyp")
    assert p.detector.max_candidates == 3 and p.score_augmentations is None
    assert p.scales == (1.0, 1.5) and p.patches_per_candidate == 80
    bad = {"trian_crops=5": "has no setting 'trian_crops'", "train_crops=x": "not a int",
           "train_crops=0": "train_crops=0 must be >= 1", "train_crops": "not NAME=VALUE",
           "detector=3": "group of settings", "detector.sigma=-1": "detector.sigma='-1'",
           "score_augmentations=0:999": "must index the 120 patches"}
    for text, message in bad.items():
        with pytest.raises(ValueError, match=message):
            with_options(POLYP_SMOKE if "detector" in text or "score" in text else FRAMES_SMOKE,
                         text, "polyp" if "detector" in text or "score" in text else "frames")
    app = make_app("frames", preset="smoke", options="test_crops=5")
    assert app.settings.test_crops == 5


def test_make_app_knows_both(cache):
    assert isinstance(make_app("polyp", preset="smoke"), PolypApp)
    assert isinstance(make_app("frames", preset="smoke"), FramesApp)
    with pytest.raises(ValueError, match="unknown preset"):
        make_app("frames", preset="huge")
