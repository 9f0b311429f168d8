"""The ``cimt`` application: the dense inference against classifying the patches one by one,
the snakes and the baseline on hand-made maps and images, the ROI rule, the sampled pixels, the
SYNTHETIC images' geometry, a run through the trainer (and predict), and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
import tifffile

from ftjax import dense, layerwise
from ftjax.apps import make_app, study_facts, train_presets
from ftjax.apps.cimt.app import MARGIN, PRESETS, CimtApp, CimtSettings, sample_pixels
from ftjax.apps.cimt.boundaries import (
    Roi,
    RoiError,
    SnakeConfig,
    initial_rows,
    roi_of,
    snakes,
    transitions_baseline,
)
from ftjax.apps.cimt.readers import CimtDataError
from ftjax.apps.cimt.synthetic import carotid_image
from ftjax.models.alexnet import AlexNet
from ftjax.predictions import Predictions, headline
from ftjax.scoring import Scorer
from ftjax.trainer import best_checkpoint, make_config, train_and_evaluate

# 6 subjects of one 56 x 120 image: 3 training, 1 validation and 2 test subjects.
TINY = CimtSettings(subjects=6, images_per_subject=1, shape=(56, 120), test_fraction=0.34,
                    patch_size=25, roi_height_mm=2.4, pixels_per_class=20, max_train_patches=120,
                    n_boot=200, overlays=1)
RUN = dict(tune_from="scratch", weights="random", input_size=100, arch="torchvision",
           batch_size=16, epochs=1, log_every=50, eval_chunk=16)


@pytest.fixture(scope="module")
def scorer():
    """A scratch torchvision network at 100 px: 25-pixel patches scale by 4."""
    params = layerwise.init_params(None, "scratch", 3, "torchvision", jax.random.key(0),
                                   size=100)
    return Scorer(AlexNet(num_classes=3, variant="torchvision"), params, size=100, chunk=32)


# ----------------------------------------------------------------------- dense inference
@pytest.mark.parametrize("variant,size", [("torchvision", 100), ("caffe", 224)])
def test_one_window_of_the_convolutional_network_is_the_network(variant, size):
    model = AlexNet(num_classes=3, variant=variant)
    params = layerwise.init_params(None, "scratch", 3, variant, jax.random.key(1), size=size)
    x = jax.random.normal(jax.random.key(2), (2, size, size, 3)) * 40
    want = model.apply({"params": params}, x)
    got = dense.dense_logits(model, params, x, dense.pool5_side(model, size))
    assert got.shape == (2, 1, 1, 3)
    np.testing.assert_allclose(got[:, 0, 0], want, rtol=1e-4, atol=1e-5)


def _pointwise(params, key):
    """The network with every convolution cut to its centre tap (He-scaled): each pool5 cell
    then depends on the pixels under its own taps only, never on padding or on the resize's
    edge, so the convolutional map must equal the patch-by-patch map exactly."""
    out = dict(params)
    for i, layer in enumerate(("conv1", "conv2", "conv3", "conv4", "conv5")):
        k = np.zeros_like(np.asarray(params[layer]["kernel"]))
        c = k.shape[0] // 2
        k[c, c] = np.asarray(jax.random.normal(jax.random.fold_in(key, i), k.shape[2:]))
        out[layer] = {"kernel": k * np.sqrt(2.0 / k.shape[2]),
                      "bias": np.asarray(params[layer]["bias"])}
    return out


def test_convolutional_map_is_the_patch_by_patch_map_where_padding_does_not_matter(scorer):
    params = _pointwise(scorer.params, jax.random.key(3))
    exact = Scorer(scorer.model, params, size=100, chunk=32)
    image = carotid_image(0, 1, 0, (56, 96)).image[20:41, :37]  # 21 x 37: tiles cut at 16
    by_patch = dense.probability_map(exact, image, 25, "patches")
    conv = dense.probability_map(exact, image, 25, "convolutional", tile=16)
    assert conv.shape == by_patch.shape == (21, 37, 3)
    assert by_patch[..., 1].std() > 1e-3  # the map follows the image
    np.testing.assert_allclose(conv, by_patch, atol=2e-5)


def test_dense_methods_and_their_errors():
    assert dense.choose("auto", 100, 25) == "convolutional"
    assert dense.choose("auto", 227, 28) == "patches"
    with pytest.raises(ValueError, match="dense=convolutional needs the network input"):
        dense.choose("convolutional", 227, 28)
    with pytest.raises(ValueError, match="not one of"):
        dense.choose("fast", 100, 25)
    img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    patch = dense.patches_at(img, [0, 3], [4, 0], 3)
    np.testing.assert_array_equal(patch[0], [[3, 4, 4], [3, 4, 4], [8, 9, 9]])
    np.testing.assert_array_equal(patch[1], [[10, 10, 11], [15, 15, 16], [15, 15, 16]])


# ------------------------------------------------------------------- boundaries, baseline
def _ridges(li, ma, rows=40, width=1.0):
    y = np.arange(rows)[:, None]
    return (np.exp(-0.5 * ((y - li[None]) / width) ** 2),
            np.exp(-0.5 * ((y - ma[None]) / width) ** 2))


def test_snakes_smooth_outliers_and_keep_ma_below_li():
    x = np.arange(60)
    li, ma = 12 + 0.1 * x, 20 + 0.1 * x
    p_li, p_ma = _ridges(li, ma)
    spikes = [10, 30, 45]
    p_li[:, spikes] = 0
    p_li[30, spikes] = 1  # the argmax jumps to row 30 in three columns
    start_li, _ = initial_rows(p_li, p_ma)
    got_li, got_ma = snakes(p_li, p_ma, SnakeConfig())
    clean = np.setdiff1d(x, spikes)
    assert np.abs(got_li[clean] - li[clean]).max() < 0.6
    assert np.abs(got_ma - ma).max() < 0.6
    assert np.all(np.abs(got_li[spikes] - li[spikes]) < np.abs(start_li[spikes] - li[spikes]))
    # MA's ridge above LI's in the middle columns: the contours never cross
    crossed_ma = np.where((x > 20) & (x < 40), li - 4, ma)
    got_li, got_ma = snakes(*_ridges(li, crossed_ma), SnakeConfig(gap=1.0))
    assert np.all(got_ma >= got_li + 1.0 - 1e-9)


def test_baseline_finds_the_two_dark_to_bright_steps():
    roi = np.full((40, 30), 20.0)
    roi[12:15] = 200  # intima echo: LI at row 12
    roi[15:22] = 60  # media
    roi[22:] = 180  # adventitia: MA at row 22
    li, ma = transitions_baseline(roi.astype(np.uint8), sigma=0.7)
    np.testing.assert_array_equal(li, 12)
    np.testing.assert_array_equal(ma, 22)


def test_roi_spans_the_traced_columns_and_a_band_of_fixed_height():
    li = np.full(100, np.nan)
    ma = np.full(100, np.nan)
    li[10:80], ma[15:90] = 40.0, 50.0
    roi = roi_of("img", (120, 100), li, ma, 0.05, 2.0, 25)
    assert (roi.left, roi.right, roi.bottom - roi.top) == (10, 90, 40)
    assert abs((roi.top + roi.bottom) / 2 - np.mean([40.0] * 70 + [50.0] * 75)) <= 1
    near_top = roi_of("img", (120, 100), li - 35, ma - 35, 0.05, 2.0, 25)
    assert near_top.top == 0  # kept inside the image
    with pytest.raises(RoiError, match=r"^img: region of interest 20x80 px is smaller than a "
                                       r"25-px patch"):
        roi_of("img", (120, 100), li, ma, 0.05, 1.0, 25)


def test_sampled_pixels_hold_their_class():
    im = carotid_image(3, 0, 0, (64, 140))
    roi = roi_of(im.id, im.image.shape, im.li, im.ma, im.mm_per_pixel, 2.5, 25)
    rows, cols, labels = sample_pixels(im.li, im.ma, roi, 30, np.random.default_rng(0))
    assert all(np.sum(labels == k) == 30 for k in (0, 1, 2))
    assert np.all((rows >= roi.top) & (rows < roi.bottom))
    assert np.all((cols >= roi.left) & (cols < roi.right))
    np.testing.assert_array_equal(rows[labels == 1], np.round(im.li[cols[labels == 1]]))
    np.testing.assert_array_equal(rows[labels == 2], np.round(im.ma[cols[labels == 2]]))
    back = labels == 0
    assert np.all(np.abs(rows[back] - im.li[cols[back]]) >= MARGIN)
    assert np.all(np.abs(rows[back] - im.ma[cols[back]]) >= MARGIN)


def test_synthetic_walls_have_the_stated_geometry():
    for subject in range(6):
        a, b = carotid_image(7, subject, 0), carotid_image(7, subject, 1)
        for im in (a, b):
            both = np.isfinite(im.li) & np.isfinite(im.ma)
            imt = (im.ma - im.li)[both] * im.mm_per_pixel
            assert 0.4 < imt.min() and imt.max() < 1.15
            assert 0.055 < im.mm_per_pixel < 0.065
            assert im.image.dtype == np.uint8
        assert a.subject == b.subject and not np.array_equal(a.image, b.image)
    again = carotid_image(7, 2, 1)
    np.testing.assert_array_equal(again.image, carotid_image(7, 2, 1).image)


# ---------------------------------------------------------------------- through the trainer
def test_a_run_through_the_trainer_segments_every_test_roi(cache, tmp_path):
    app = CimtApp(settings=TINY, log=None)
    results = train_and_evaluate(make_config("cimt", "smoke", **RUN), tmp_path, app=app,
                                 quiet=True)
    assert results["synthetic"] and "SYNTHETIC" in results["note"]
    written = json.loads((tmp_path / "results.json").read_text())
    pred = Predictions.read(tmp_path)
    assert written["test"]["headline"]["value"] == pytest.approx(headline(pred).value)
    summary = written["test"]
    assert summary["num_test_images"] == 2 and summary["dense"]["method"] == "convolutional"
    for who in ("network", "baseline"):
        errors = summary["errors_um"][who]
        assert {"LI", "MA", "imt_abs", "imt_signed"} <= set(errors)
        assert errors["LI"]["low"] <= errors["LI"]["mean"] <= errors["LI"]["high"]
    assert set(summary["paper_fig9_li_ma_um"]) >= {"fc8", "scratch", "handcrafted"}
    # only covered columns are scored: the items are the traced columns of each interface
    for im in (im for c in app.cases("test") for im in app.images.images(c)):
        rows = pred.case_rows(f"{im.id}/LI")
        traced = np.flatnonzero(np.isfinite(im.li))
        np.testing.assert_array_equal(np.sort(pred.columns["item"][rows].astype(int)), traced)
    for per in summary["per_image"]:
        assert per["imt_pred_um"] > 0  # MA below LI
    assert all(Path(path).is_file() for path in summary["figures"].values())
    _, params, _ = best_checkpoint(tmp_path)
    trained = Scorer(AlexNet(num_classes=3, variant="torchvision"), params, size=100)
    written = app.predict(trained, tmp_path / "new")
    assert len(written) == TINY.subjects and (tmp_path / "new" / "synthetic-00000-0.png").exists()
    table = np.loadtxt(written[0], delimiter=",", skiprows=1)
    assert np.all(table[:, 2] > table[:, 1])


def test_presets_and_study_facts():
    assert train_presets("cimt")["smoke"]["input_size"] == 4 * PRESETS["smoke"].patch_size
    assert dense.conv_scale(train_presets("cimt")["paper"]["input_size"],
                            PRESETS["paper"].patch_size) == 8
    assert study_facts("cimt")["paper_numbers"]["li_ma_um"]["conv1"] == (24.7, 31.2)
    app = make_app("cimt", preset="smoke")
    assert len(app.cases("test")) * app.settings.images_per_subject >= 6


# ------------------------------------------------------------------------------ bad input
def _write_cubs(root, ids=("s1_L", "s1_R", "s2_L", "s3_L")):
    for d in ("IMAGES", "CF", "SEGMENTATIONS/Manual-A1"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(ids):
        im = carotid_image(5, i, 0, (70, 140))
        tifffile.imwrite(root / "IMAGES" / f"{name}.tiff", im.image)
        (root / "CF" / f"{name}_CF.txt").write_text(f"{im.mm_per_pixel}\n")
        for which, trace in (("LI", im.li), ("MA", im.ma)):
            cols = np.flatnonzero(np.isfinite(trace))
            lines = "".join(f"{c} {trace[c]:.3f}\n" for c in cols)
            (root / "SEGMENTATIONS" / "Manual-A1" / f"{name}-{which}.txt").write_text(lines)
    return root


def test_cubs_files_split_by_subject(cache, tmp_path):
    app = CimtApp(f"cubs:{_write_cubs(tmp_path)}", dataclasses.replace(TINY, patch_size=15),
                  log=None)
    assert app.list_cases() == ["s1", "s2", "s3"]
    assert [im.id for im in app.images.images("s1")] == ["s1_L", "s1_R"]
    assert len(app.dataset().training().labels) > 0


def test_bad_input_is_one_line_naming_the_file(cache, tmp_path):
    root = _write_cubs(tmp_path / "cubs")
    (root / "CF" / "s2_L_CF.txt").unlink()
    with pytest.raises(CimtDataError, match=r"s2_L_CF.txt") as e:
        CimtApp(f"cubs:{root}", TINY, log=None)
    assert "\n" not in str(e.value)
    root = _write_cubs(tmp_path / "cubs2")
    (root / "SEGMENTATIONS" / "Manual-A1" / "s3_L-MA.txt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    app = CimtApp(f"cubs:{root}", dataclasses.replace(TINY, patch_size=15), log=None)
    with pytest.raises(CimtDataError, match=r"s3_L-MA.txt.*layout"):
        app.dataset()
    assert not list((cache / "datasets" / "cimt").glob(f"*{app.spec().key()}*"))
    tall = dataclasses.replace(TINY, roi_height_mm=0.5)  # 8 rows: less than a patch
    with pytest.raises(RoiError, match=r"synthetic-\d+-0: region of interest"):
        CimtApp(settings=tall, log=None).dataset()
    with pytest.raises(ValueError, match="dense='fast'"):
        make_app("cimt", options="dense=fast")
    assert Roi(0, 1, 0, 2).crop(np.zeros((2, 3))).shape == (1, 2)
    # an info field may not shadow a record's own fields (cimt's first "row" did, silently)
    spec = CimtApp(settings=TINY, log=None).spec()
    with pytest.raises(ValueError, match=r"info fields \['row'\] would shadow"):
        dataclasses.replace(spec, info_fields={"row": ((), "int32")})
