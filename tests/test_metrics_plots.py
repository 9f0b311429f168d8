"""Figures are written as PNG files named by what they show."""

import matplotlib
import numpy as np
import pytest
from matplotlib.image import imread

from ftjax.metrics import CaseHits, froc_bootstrap, froc_from_cases, roc_bootstrap, roc_curve
from ftjax.metrics.plots import (
    plot_boxplots,
    plot_froc,
    plot_intervals,
    plot_roc,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path, width_in, height_in, dpi=120):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.shape[:2] == (round(height_in * dpi), round(width_in * dpi))
    assert image[..., :3].std() > 0  # something was drawn


def _froc_inputs():
    rng = np.random.default_rng(0)
    configs = {}
    for name, rate in (("conv1", 0.9), ("scratch", 0.6)):
        configs[name] = [
            CaseHits(
                rng.random(5) * 0.7, [0.4 + 0.6 * rng.random()] if rng.random() < rate else [], 1
            )
            for _ in range(60)
        ]
    curves = {name: froc_from_cases(cases) for name, cases in configs.items()}
    bands = {name: froc_bootstrap(cases, [1, 2], n_boot=100) for name, cases in configs.items()}
    return curves, bands


def test_froc_plot_linear_and_log(tmp_path):
    curves, bands = _froc_inputs()
    linear = plot_froc(curves, tmp_path, bands, per="volume", title="PE")
    log = plot_froc(curves, tmp_path, bands, log_x=True, x_limits=(1e-2, 10), title="PE")
    assert linear == tmp_path / "froc_pe.png"
    assert log == tmp_path / "froc_pe_logx.png"
    _is_png(linear, 5.5, 4.2)
    _is_png(log, 5.5, 4.2)
    assert plot_froc(curves, tmp_path / "sub" / "mine.png") == tmp_path / "sub" / "mine.png"
    assert (tmp_path / "sub" / "mine.png").exists()


def test_roc_boxplot_training_plots(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    scores = {"conv4": labels + rng.normal(size=200), "fc8": labels + 2 * rng.normal(size=200)}
    curves = {name: roc_curve(labels, s) for name, s in scores.items()}
    bands = {name: roc_bootstrap(labels, s, n_boot=100) for name, s in scores.items()}
    roc = plot_roc(curves, tmp_path, bands, title="Frames")
    assert roc == tmp_path / "roc_frames.png"
    _is_png(roc, 4.8, 4.5)

    groups = {"fc8": rng.normal(100, 20, 50), "conv1": rng.normal(25, 5, 50)}
    box = plot_boxplots(groups, tmp_path, ylabel="LI error (um)")
    assert box == tmp_path / "boxplot_li_error_um.png"
    _is_png(box, 4.0, 4.2)

    series = {
        "train loss": np.linspace(1, 0.2, 30),
        "val AUC": np.c_[np.arange(0, 30, 3), np.ones(10)],
    }
    training = plot_training_curves(series, tmp_path, ylabel="value", title="conv3 run")
    assert training == tmp_path / "training_conv3_run.png"
    _is_png(training, 5.5, 4.0)

    reduced = {"conv1": [[1.0, 0.8, 0.7, 0.9], [0.5, 0.75, 0.6, 0.85], [0.25, 0.7, 0.5, 0.8]],
               "scratch": [[1.0, 0.8, 0.7, 0.9], [0.5, 0.6, np.nan, np.nan]]}
    bars = plot_intervals(reduced, tmp_path, ylabel="AUC", xlabel="training share",
                          title="reduced")
    assert bars == tmp_path / "intervals_reduced.png"
    _is_png(bars, 5.5, 4.0)


def test_plots_leave_the_backend_alone(tmp_path):
    before = matplotlib.get_backend()
    plot_boxplots({"a": [1.0, 2.0, 3.0]}, tmp_path, ylabel="x")
    assert matplotlib.get_backend() == before


def test_bad_plot_input(tmp_path):
    with pytest.raises(ValueError, match="no FROC curves"):
        plot_froc({}, tmp_path)
    with pytest.raises(ValueError, match="group 'a'"):
        plot_boxplots({"a": [1.0, np.nan]}, tmp_path, ylabel="x")
    with pytest.raises(ValueError, match="series 'loss'"):
        plot_training_curves({"loss": np.zeros((3, 3))}, tmp_path, ylabel="x")
    with pytest.raises(ValueError, match="series 'conv1'"):
        plot_intervals({"conv1": np.zeros((2, 3))}, tmp_path, ylabel="y", xlabel="x")
