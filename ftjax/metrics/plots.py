"""Figures: FROC and ROC curves with bootstrap bands, Tukey box plots, training curves.

Figures are built on `matplotlib.figure.Figure` and written as PNG without pyplot, so no GUI
backend is touched and the global backend is never switched: safe on headless machines and
inside notebooks alike. Every function takes an output directory (the file is named after what it
shows) or an explicit `.png` path, and returns the path written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ftjax.metrics.froc import FrocCurve
from ftjax.metrics.roc import CurveBootstrap, RocCurve

_BAND_ALPHA = 0.2


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _output_path(out: str | Path, kind: str, title: str) -> Path:
    """`out` itself if it names a .png file, else `out/<kind>[_<title>].png`."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        path = out
    else:
        slug = _slug(title)
        path = out / (f"{kind}_{slug}.png" if slug else f"{kind}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _nonempty(items: Mapping, what: str) -> None:
    if len(items) == 0:
        raise ValueError(f"no {what} to plot")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _finish_lines(fig: Figure, ax, out: str | Path, kind: str, xlabel: str, ylabel: str,
                  title: str) -> Path:
    """Labels, grid, legend and title of a line figure, written as ``kind[_title].png``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, _output_path(out, kind, title or ylabel))


def _band(ax, bands: Mapping[str, CurveBootstrap] | None, name: str, color: str) -> None:
    if bands is not None and name in bands:
        b = bands[name]
        ax.fill_between(b.grid, b.band_low, b.band_high, color=color, alpha=_BAND_ALPHA, lw=0)


def plot_froc(
    curves: Mapping[str, FrocCurve],
    out: str | Path,
    bands: Mapping[str, CurveBootstrap] | None = None,
    log_x: bool = False,
    x_limits: tuple[float, float] | None = None,
    per: str = "case",
    title: str = "",
) -> Path:
    """FROC curves of several configurations, each with its pointwise band when given.

    `per` names the case unit on the x axis ("volume", "frame"); `log_x` gives the paper's polyp
    figure (zero FP rates cannot appear on a log axis and are dropped). Named
    `froc[_<title>][_logx].png`.
    """
    _nonempty(curves, "FROC curves")
    fig = Figure(figsize=(5.5, 4.2), dpi=120)
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        _band(ax, bands, name, color)
        ax.plot(curve.fps, curve.sensitivity, color=color, lw=1.5, label=name)
    if log_x:
        ax.set_xscale("log")
    if x_limits is not None:
        ax.set_xlim(*x_limits)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(f"false positives per {per}")
    ax.set_ylabel("sensitivity")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, _output_path(out, "froc", f"{title}_logx" if log_x else title))


def plot_roc(
    curves: Mapping[str, RocCurve],
    out: str | Path,
    bands: Mapping[str, CurveBootstrap] | None = None,
    title: str = "",
) -> Path:
    """ROC curves with their AUC in the legend and pointwise bands when given."""
    _nonempty(curves, "ROC curves")
    fig = Figure(figsize=(4.8, 4.5), dpi=120)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
    for i, (name, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        _band(ax, bands, name, color)
        auc = float(np.trapezoid(curve.tpr, curve.fpr))
        ax.plot(curve.fpr, curve.tpr, color=color, lw=1.5, label=f"{name} (AUC {auc:.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("sensitivity")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, _output_path(out, "roc", title))


def plot_boxplots(
    groups: Mapping[str, ArrayLike],
    out: str | Path,
    ylabel: str,
    title: str = "",
) -> Path:
    """Box plots with Tukey whiskers (1.5 IQR) and outliers, one box per configuration."""
    _nonempty(groups, "groups")
    data = []
    for name, values in groups.items():
        arr = np.asarray(values, dtype=float).reshape(-1)
        if arr.size == 0 or not np.isfinite(arr).all():
            raise ValueError(f"group {name!r} must be non-empty and finite")
        data.append(arr)
    fig = Figure(figsize=(max(4.0, 0.7 * len(data) + 1.5), 4.2), dpi=120)
    ax = fig.add_subplot()
    ax.boxplot(data, whis=1.5, tick_labels=list(groups), showfliers=True)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, _output_path(out, "boxplot", title or ylabel))


def plot_training_curves(
    series: Mapping[str, ArrayLike],
    out: str | Path,
    ylabel: str,
    xlabel: str = "epoch",
    title: str = "",
) -> Path:
    """Training curves: each series is 1-D values (x = 1..n) or an (n, 2) array of (x, y)."""
    _nonempty(series, "series")
    fig = Figure(figsize=(5.5, 4.0), dpi=120)
    ax = fig.add_subplot()
    for name, values in series.items():
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 1 and arr.size:
            x, y = np.arange(1, arr.size + 1), arr
        elif arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0]:
            x, y = arr[:, 0], arr[:, 1]
        else:
            raise ValueError(f"series {name!r} must be 1-D or (n, 2), got shape {arr.shape}")
        ax.plot(x, y, lw=1.3, label=name)
    return _finish_lines(fig, ax, out, "training", xlabel, ylabel, title)


def plot_intervals(
    series: Mapping[str, ArrayLike],
    out: str | Path,
    ylabel: str,
    xlabel: str,
    title: str = "",
) -> Path:
    """Lines with interval bars: each series an (n, 4) array of (x, y, low, high) rows (the
    reduced-training-set figure: a metric against the share of the training data kept)."""
    _nonempty(series, "series")
    fig = Figure(figsize=(5.5, 4.0), dpi=120)
    ax = fig.add_subplot()
    for i, (name, rows) in enumerate(series.items()):
        arr = np.asarray(rows, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 4 or not arr.shape[0]:
            raise ValueError(f"series {name!r} must be (n, 4) rows of x, y, low, high; got "
                             f"shape {arr.shape}")
        arr = arr[np.argsort(arr[:, 0])]
        err = np.abs(np.stack([arr[:, 1] - arr[:, 2], arr[:, 3] - arr[:, 1]]))
        ax.errorbar(arr[:, 0], arr[:, 1], yerr=np.nan_to_num(err), color=f"C{i % 10}",
                    marker="o", capsize=3, lw=1.3, label=name)
    return _finish_lines(fig, ax, out, "intervals", xlabel, ylabel, title)
