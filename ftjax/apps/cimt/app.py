"""Application ``cimt``: lumen-intima (LI) and media-adventitia (MA) boundaries in carotid
ultrasound, and the intima-media thickness between them (PAPER.md, section 4).

    python -m ftjax.train --app=cimt --tune_from=conv1                  # SYNTHETIC images
    python -m ftjax.train --app=cimt --data=cubs:/data/CUBS --preset=paper

Cases are subjects (SYNTHETIC, or CUBS subjects: an image id without its ``_L`` / ``_R``), split
by subject. Each image's region of interest (ROI) is the box a user would draw around the far
wall (``boundaries.roi_of``): its position comes from the expert's traces, nothing inside it
does. Three classes: background, on LI, on MA. Training patches are grey patches centred on
sampled ROI pixels (on each interface, and elsewhere in the ROI at least 2 rows from both),
copied into 3 channels, stratified across the classes, without augmentation (the paper's
choice). Validation candidates are such pixels of the validation subjects (one patch each); the
trainer selects the snapshot by their AUC of interface (LI or MA) vs background, the paper's.

The test classifies every pixel of every test ROI (``ftjax.dense``: convolutionally where the
input size allows, else patch by patch), starts per column at the rows of highest LI and MA
probability (MA below LI) and smooths them with snakes (``boundaries.snakes``). Errors per
interface in micrometres over the columns the expert traced, IMT error and bias per image,
summarised with bootstrap intervals over subjects, against a non-learned baseline (the two
strongest dark-to-bright transitions per column) on the same images, with box plots and
overlays. Results on SYNTHETIC images are a demonstration, never a medical finding.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftjax.apps.candidates import CandidateApp, CandidateSettings, DataSource, from_preset
from ftjax.apps.cimt import readers
from ftjax.apps.cimt.boundaries import Roi, SnakeConfig, roi_of, snakes, transitions_baseline
from ftjax.apps.cimt.presets import STUDY
from ftjax.apps.cimt.synthetic import DESCRIPTION, carotid_image
from ftjax.apps.protocol import TestResult
from ftjax.data.patch_dataset import CaseTable
from ftjax.dense import METHODS, TILE, choose, patches_at, probability_map
from ftjax.metrics import BoundaryTable, boundary_errors, compare_boundary
from ftjax.predictions import Predictions, cluster_bootstrap_mean, compare, headline

# (the index of a split already has a "row" key: the record's row in the data set)
INFO_FIELDS = {"image": ((), "int32"), "y": ((), "int32"), "x": ((), "int32")}
BACKGROUND, LI, MA = 0, 1, 2
INTERFACES = ("LI", "MA")
MARGIN = 2  # background pixels are at least this many rows from both interfaces


@dataclasses.dataclass(frozen=True)
class CimtSettings(CandidateSettings):
    """What a preset sets beyond ``CandidateSettings``.

    subjects / images_per_subject / shape / mm_per_pixel: the SYNTHETIC images (the pixel size
    varies +-8% per image). roi_height_mm: the ROI's band of rows [assumed; CUBS ships no ROI].
    pixels_per_class: sampled per image and class (LI, MA: at most one per traced column;
    background). analyst: the CUBS segmentation folder. dense: ``auto``, ``convolutional`` or
    ``patches`` (``ftjax.dense``); tile: its tile side. snake: the active contours.
    baseline_sigma: smoothing of the baseline's image (rows; twice along columns). overlays:
    test images drawn with their boundaries.
    """

    subjects: int = 92
    images_per_subject: int = 3
    shape: tuple[int, int] = (96, 320)
    mm_per_pixel: float = 0.06
    roi_height_mm: float = 3.6
    pixels_per_class: int = 1000
    analyst: str = readers.DEFAULT_ANALYST
    dense: str = "auto"
    tile: int = TILE
    snake: SnakeConfig = SnakeConfig()
    baseline_sigma: float = 1.5
    overlays: int = 4

    @property
    def patches_per_candidate(self) -> int:
        return 1  # a pixel is its one patch: no augmentation

    def check(self) -> None:
        super().check()
        for name in ("subjects", "images_per_subject", "pixels_per_class", "tile"):
            if getattr(self, name) < 1:
                raise ValueError(f"setting {name}={getattr(self, name)} must be >= 1")
        if self.subjects < 3:
            raise ValueError(f"setting subjects={self.subjects} must be >= 3")
        if len(self.shape) != 2 or min(self.shape) < self.patch_size:
            raise ValueError(f"setting shape={self.shape} must be (rows, columns), each >= "
                             f"patch_size={self.patch_size}")
        for name in ("mm_per_pixel", "roi_height_mm", "baseline_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"setting {name}={getattr(self, name)} must be > 0")
        if self.dense not in METHODS:
            raise ValueError(f"setting dense={self.dense!r} must be one of {METHODS}")
        s = self.snake
        if s.iterations < 0 or min(s.alpha, s.beta, s.step, s.force, s.sigma, s.gap) < 0:
            raise ValueError(f"settings snake={s} must be non-negative")


# [paper] 92 subjects' videos, 3 ROIs each (276), 144 training and 132 test ROIs split by
# subject, 200,000 stratified training patches. [assumed] 28-pixel patches (1.7 mm at 0.06
# mm/px: the intima-media complex with lumen and adventitia around it), ROIs 3.6 mm high.
PAPER = CimtSettings(test_fraction=132 / 276, patch_size=28, max_train_patches=200_000)
# Minutes on a 2-core CPU: 14 SYNTHETIC subjects of 2 images of 80 x 288 px (3 test subjects,
# 6 full-size test ROIs of about 50 x 260 px), 25-pixel patches, ROIs 3 mm high, 150 pixels
# per class and image, 2,400 training patches.
SMOKE = dataclasses.replace(PAPER, subjects=14, images_per_subject=2, shape=(80, 288),
                            test_fraction=0.2, patch_size=25, roi_height_mm=3.0,
                            pixels_per_class=150, max_train_patches=2400)
PRESETS = {"smoke": SMOKE, "paper": PAPER}


class CarotidImages:
    """The images of each subject: SYNTHETIC (``synthetic.carotid_image``) or CUBS."""

    def __init__(self, source: DataSource, settings: CimtSettings, data_seed: int):
        self.source, self.settings, self.seed = source, settings, data_seed
        self._cached: tuple[str, list[Any]] | None = None
        self.records: dict[str, list[readers.CubsRecord]] = {}
        if not source.synthetic:
            for record in readers.list_cubs(source.root, settings.analyst):
                self.records.setdefault(record.subject, []).append(record)

    def subjects(self) -> list[str]:
        if self.source.synthetic:
            return [f"synthetic-{i:05d}" for i in range(self.settings.subjects)]
        return list(self.records)

    def images(self, subject: str) -> list[Any]:
        """The subject's images (each with ``id``, ``subject``, ``image``, ``mm_per_pixel``,
        ``li``, ``ma``), the last subject's kept in memory."""
        if self._cached is None or self._cached[0] != subject:
            s = self.settings
            if self.source.synthetic:
                number = int(subject.rsplit("-", 1)[1])
                found = [carotid_image(self.seed, number, k, s.shape, s.mm_per_pixel)
                         for k in range(s.images_per_subject)]
            else:
                found = [readers.load(r) for r in self.records[subject]]
            self._cached = (subject, found)
        return self._cached[1]

    def fingerprint_params(self) -> dict[str, Any]:
        s = self.settings
        if self.source.synthetic:
            return {"subjects": s.subjects, "images_per_subject": s.images_per_subject,
                    "shape": s.shape, "mm_per_pixel": s.mm_per_pixel}
        return {"reader": readers.FORMAT_VERSION, "analyst": s.analyst}


def sample_pixels(li: np.ndarray, ma: np.ndarray, roi: Roi, n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and classes of up to ``n`` pixels per class inside ``roi``: on LI and on MA
    (the traced row rounded, one per column) and background (in columns where both interfaces
    are traced, at least ``MARGIN`` rows from each)."""
    cols = np.arange(roi.left, roi.right)
    picked = []
    for label, trace in ((LI, li), (MA, ma)):
        ok = np.isfinite(trace[cols])
        rows = np.round(np.where(ok, trace[cols], -1)).astype(int)
        ok &= (rows >= roi.top) & (rows < roi.bottom)
        idx = np.flatnonzero(ok)
        idx = rng.choice(idx, min(n, len(idx)), replace=False) if len(idx) else idx
        picked.append((rows[idx], cols[idx], np.full(len(idx), label)))
    both = np.isfinite(li[cols]) & np.isfinite(ma[cols])
    grid_r, grid_c = np.mgrid[roi.top:roi.bottom, roi.left:roi.right]
    with np.errstate(invalid="ignore"):
        far = (both[None] & (np.abs(grid_r - li[grid_c]) >= MARGIN)
               & (np.abs(grid_r - ma[grid_c]) >= MARGIN))
    flat = np.flatnonzero(far)
    flat = rng.choice(flat, min(n, len(flat)), replace=False) if len(flat) else flat
    picked.append((grid_r.ravel()[flat], grid_c.ravel()[flat],
                   np.full(len(flat), BACKGROUND)))
    return tuple(np.concatenate(p) for p in zip(*picked, strict=True))


class _Pixels:
    """The PatchProducer of the cimt data set: sampled ROI pixels of training and validation
    subjects (test subjects are segmented densely at test time: nothing of them is stored)."""

    def __init__(self, app: CimtApp):
        self.app = app
        self._last: tuple[str, CaseTable] | None = None

    def table(self, case: str) -> CaseTable:
        if self._last is not None and self._last[0] == case:
            return self._last[1]
        s, images = self.app.settings, self.app.images.images(case)
        parts = []
        if case not in self.app.cases("test"):
            for k, im in enumerate(images):
                rng = np.random.default_rng([self.app.data_seed, k, *map(ord, case)])
                rows, cols, labels = sample_pixels(im.li, im.ma, self.app.roi(im),
                                                   s.pixels_per_class, rng)
                parts.append((np.full(len(rows), k), rows, cols, labels))
        image, rows, cols, labels = (np.concatenate(p).astype(np.int32) for p in zip(
            *parts, strict=True)) if parts else (np.zeros(0, np.int32),) * 4
        table = CaseTable(labels, {"image": image, "y": rows, "x": cols},
                          {"images": [im.id for im in images],
                           "mm_per_pixel": [im.mm_per_pixel for im in images]})
        self._last = (case, table)
        return table

    def patches(self, case: str, candidates: np.ndarray) -> np.ndarray:
        table, images = self.table(case), self.app.images.images(case)
        p = self.app.settings.patch_size
        out = np.zeros((len(candidates), 1, p, p, 3), np.uint8)
        which = table.info["image"][candidates]
        for k in np.unique(which):
            at = np.flatnonzero(which == k)
            rows, cols = table.info["y"][candidates[at]], table.info["x"][candidates[at]]
            out[at, 0] = patches_at(images[k].image, rows, cols, p)[..., None]
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class Segmentation:
    """One image's boundaries in image rows per column (NaN outside the ROI's columns)."""

    li: np.ndarray
    ma: np.ndarray
    baseline_li: np.ndarray
    baseline_ma: np.ndarray
    roi: Roi
    probabilities: np.ndarray  # [ROI rows, ROI columns, classes]
    seconds: float

    @property
    def pixels(self) -> int:
        return self.probabilities.shape[0] * self.probabilities.shape[1]


class CimtApp(CandidateApp):
    """The cimt application (``ftjax.apps.protocol.Application``): a candidate app for training
    and validation (pixels), with its own dense test."""

    name = "cimt"
    classes = ("background", "LI", "MA")
    reduction_unit = "subjects"
    DATASETS = ("cubs",)
    INFO_FIELDS = INFO_FIELDS
    settings: CimtSettings

    def __init__(self, data: str = "synthetic", settings: CimtSettings = SMOKE,
                 data_seed: int = 0, val_fraction: float = 0.2, log: Any = print):
        settings.check()
        super().__init__(data, settings, data_seed, val_fraction, log)
        self.images = CarotidImages(self.source, settings, data_seed)

    def list_cases(self) -> list[str]:
        return self.images.subjects()

    def producer(self, labelled: bool = True) -> _Pixels:
        return _Pixels(self)

    def generation_params(self) -> dict[str, Any]:
        s = self.settings
        return {**self.images.fingerprint_params(), "roi_height_mm": s.roi_height_mm,
                "pixels_per_class": s.pixels_per_class, "margin": MARGIN}

    def units(self, cases: Sequence[str]) -> np.ndarray:
        return np.ones(len(cases))

    @property
    def validation_metric(self) -> str:
        return ("pixel AUC, interface (LI or MA) vs background, of the validation subjects' "
                "sampled ROI pixels (one patch each)")

    def roi(self, im: Any) -> Roi:
        s = self.settings
        return roi_of(im.id, im.image.shape, im.li, im.ma, im.mm_per_pixel, s.roi_height_mm,
                      s.patch_size)

    # ------------------------------------------------------------------ dense inference
    def segment(self, scorer: Any, im: Any, method: str) -> Segmentation:
        """Every ROI pixel classified, boundaries by snakes, and the baseline's."""
        s, roi = self.settings, self.roi(im)
        # the ROI plus a patch of context on every side, as the training patches saw it
        top, left = max(0, roi.top - s.patch_size), max(0, roi.left - s.patch_size)
        window = im.image[top:roi.bottom + s.patch_size, left:roi.right + s.patch_size]
        start = time.perf_counter()
        probs = probability_map(scorer, window, s.patch_size, method, s.tile)
        seconds = time.perf_counter() - start
        probs = probs[roi.top - top:roi.bottom - top, roi.left - left:roi.right - left]
        li, ma = snakes(probs[..., LI], probs[..., MA], s.snake)
        base_li, base_ma = transitions_baseline(roi.crop(im.image), s.baseline_sigma)
        width = im.image.shape[1]

        def full(rows: np.ndarray) -> np.ndarray:
            out = np.full(width, np.nan)
            out[roi.left:roi.right] = rows + roi.top
            return out

        return Segmentation(full(li), full(ma), full(base_li), full(base_ma), roi, probs,
                            seconds)

    def test(self, scorer: Any, outdir: Path) -> TestResult:
        """Segment every test image; the paper's errors against the baseline's."""
        s = self.settings
        method = choose(s.dense, scorer.size, s.patch_size)
        outdir.mkdir(parents=True, exist_ok=True)
        done, images = [], [(c, im) for c in self.cases("test") for im in self.images.images(c)]
        for i, (subject, im) in enumerate(images):
            seg = self.segment(scorer, im, method)
            done.append((subject, im, seg))
            if self.log:
                self.log(f"cimt test: image {i + 1}/{len(images)} ({im.id}): ROI "
                         f"{seg.roi.shape[0]}x{seg.roi.shape[1]} px, {seg.pixels} pixels in "
                         f"{seg.seconds:.1f} s ({seg.pixels / seg.seconds:.0f} px/s, {method})")
        return self.result(done, method, outdir)

    def result(self, done: Sequence[tuple[str, Any, Segmentation]], method: str,
               outdir: Path) -> TestResult:
        """Predictions (one item per traced column and interface), errors and figures."""
        columns: dict[str, list[Any]] = {k: [] for k in ("case", "cluster", "item", "truth",
                                                         "score", "baseline", "interface")}
        cases: dict[str, dict[str, Any]] = {}
        system, baseline = [], []
        for subject, im, seg in done:
            for name, ref, got, base in (("LI", im.li, seg.li, seg.baseline_li),
                                         ("MA", im.ma, seg.ma, seg.baseline_ma)):
                label = self.classes.index(name)
                cols = np.flatnonzero(np.isfinite(ref) & np.isfinite(got))
                case = f"{im.id}/{name}"
                cases[case] = {"cluster": subject, "um_per_pixel": im.mm_per_pixel * 1000}
                columns["case"] += [case] * len(cols)
                columns["cluster"] += [subject] * len(cols)
                columns["item"] += [str(c) for c in cols]
                columns["truth"] += ref[cols].tolist()
                columns["score"] += got[cols].tolist()
                columns["baseline"] += base[cols].tolist()
                columns["interface"] += [label] * len(cols)
            system.append(boundary_errors(seg.li, im.li, seg.ma, im.ma, im.mm_per_pixel))
            baseline.append(boundary_errors(seg.baseline_li, im.li, seg.baseline_ma, im.ma,
                                            im.mm_per_pixel))
        n_boot, seed = self.settings.n_boot, self.data_seed
        pred = Predictions(
            app=self.name, synthetic=self.synthetic,
            metric={"kind": "boundary", "name": "mean absolute boundary error, LI and MA (um)",
                    "n_boot": n_boot, "seed": seed, "group_by": "interface",
                    "groups": {"1": "LI", "2": "MA"}},
            columns={k: np.asarray(v) for k, v in columns.items()}, cases=cases,
            descriptions={"baseline": "row of the baseline (two strongest dark-to-bright "
                                      "transitions per column)",
                          "interface": "1: LI (lumen-intima), 2: MA (media-adventitia)"})
        subjects = [subject for subject, _, _ in done]
        tables = {"network": BoundaryTable.from_images(system),
                  "baseline": BoundaryTable.from_images(baseline)}
        summary: dict[str, Any] = {
            "data": DESCRIPTION if self.synthetic else f"CUBS at {self.source.root}",
            "split": "split by subject", "num_test_subjects": len(self.cases("test")),
            "num_test_images": len(done),
            "dense": {"method": method, "pixels": int(sum(g.pixels for *_, g in done)),
                      "seconds": float(sum(g.seconds for *_, g in done))},
            "errors_um": {name: self._errors(pred if name == "network" else
                                             pred.with_score("baseline"), table, subjects)
                          for name, table in tables.items()},
            "network_vs_baseline": {
                "paired_bootstrap": compare(pred, pred.with_score("baseline")),
                "wilcoxon": {f: dataclasses.asdict(t) for f, t in compare_boundary(
                    tables)[("network", "baseline")].items()}},
            "paper_fig9_li_ma_um": {k: list(v) for k, v in
                                    STUDY["paper_numbers"]["li_ma_um"].items()},
            "per_image": [{"image": im.id, "subject": subject, **dataclasses.asdict(e)}
                          for (subject, im, _), e in zip(done, system, strict=True)],
        }
        d = summary["dense"]
        d["pixels_per_s"] = d["pixels"] / max(d["seconds"], 1e-9)
        summary["figures"] = self._figures(done, tables, outdir)
        return TestResult(headline(pred), pred, summary)

    def _errors(self, pred: Predictions, table: BoundaryTable,
                subjects: Sequence[str]) -> dict[str, Any]:
        """Per interface the mean, SD and subject-bootstrap interval (um); IMT likewise."""
        out = {}
        for name in INTERFACES:
            keep = pred.columns["interface"] == self.classes.index(name)
            part = dataclasses.replace(
                pred, columns={k: v[keep] for k, v in pred.columns.items()},
                cases={c: f for c, f in pred.cases.items() if c.endswith(f"/{name}")})
            h = headline(part)
            values = getattr(table, f"{name.lower()}_um")
            out[name] = {"mean": h.value, "sd": _sd(values), "low": h.low, "high": h.high}
        for field in ("imt_abs_um", "imt_signed_um"):
            values = getattr(table, field)
            n_boot = self.settings.n_boot
            mean, samples = cluster_bootstrap_mean(values, list(subjects), n_boot, self.data_seed)
            low, high = np.nanpercentile(samples, [2.5, 97.5])
            out[field.removesuffix("_um")] = {"mean": mean, "sd": _sd(values),
                                              "low": float(low), "high": float(high)}
        return out

    def _figures(self, done: Sequence[tuple[str, Any, Segmentation]],
                 tables: dict[str, BoundaryTable], outdir: Path) -> dict[str, str]:
        from ftjax.metrics.plots import plot_boxplots  # noqa: PLC0415 (matplotlib on demand)

        tag = " (SYNTHETIC data)" if self.synthetic else ""
        groups = {f"{label} {name}": getattr(t, field) for label, field in
                  (("LI", "li_um"), ("MA", "ma_um"), ("IMT", "imt_abs_um"))
                  for name, t in tables.items()}
        box = plot_boxplots(groups, outdir, "absolute error (um)", f"cimt{tag}")
        path = outdir / "cimt_overlays.png"
        _overlays(done[:self.settings.overlays], path, tag)
        return {"boxplot": str(box), "overlays": str(path)}

    # ------------------------------------------------------------------ new images
    def predict(self, scorer: Any, outdir: Path) -> list[Path]:
        """Segment every image of the source: per image ``<id>.csv`` (column, LI row, MA row,
        baseline rows) and ``<id>.png``. The ROI is placed from the image's traces, as at test
        (CUBS ships no ROI)."""
        method = choose(self.settings.dense, scorer.size, self.settings.patch_size)
        outdir.mkdir(parents=True, exist_ok=True)
        written = []
        for subject in self.all_cases():
            for im in self.images.images(subject):
                seg = self.segment(scorer, im, method)
                cols = np.arange(seg.roi.left, seg.roi.right)
                name = "".join(c if c.isalnum() or c in "-_." else "_" for c in im.id)
                path = outdir / f"{name}.csv"
                table = np.stack([cols, seg.li[cols], seg.ma[cols], seg.baseline_li[cols],
                                  seg.baseline_ma[cols]], axis=1)
                np.savetxt(path, table, delimiter=",", fmt="%.3f",
                           header="column,li_row,ma_row,baseline_li_row,baseline_ma_row",
                           comments="")
                _overlays([(subject, im, seg)], outdir / f"{name}.png",
                          " (SYNTHETIC)" if self.synthetic else "")
                written.append(path)
                if self.log:
                    imt = np.nanmean(seg.ma - seg.li) * im.mm_per_pixel
                    self.log(f"predict: {im.id}: mean IMT {imt:.3f} mm over {len(cols)} "
                             "columns")
        return written


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _overlays(done: Sequence[tuple[str, Any, Segmentation]], path: Path, tag: str) -> None:
    """Images with the expert's (green) and the system's (red) LI and MA, the baseline's
    (dotted blue) and the ROI (yellow)."""
    from matplotlib.figure import Figure  # noqa: PLC0415 (matplotlib on demand)

    fig = Figure(figsize=(9, 2.4 * max(1, len(done))))
    for ax, (_, im, seg) in zip(np.atleast_1d(fig.subplots(max(1, len(done)), 1)), done,
                                strict=False):
        r = seg.roi
        ax.imshow(im.image[max(0, r.top - 10):r.bottom + 10], cmap="gray",
                  extent=(-0.5, im.image.shape[1] - 0.5, min(im.image.shape[0], r.bottom + 10)
                          - 0.5, max(0, r.top - 10) - 0.5))
        for trace in (im.li, im.ma):
            ax.plot(trace, color="lime", lw=0.8)
        for trace in (seg.li, seg.ma):
            ax.plot(trace, color="red", lw=0.8)
        for trace in (seg.baseline_li, seg.baseline_ma):
            ax.plot(trace, color="deepskyblue", lw=0.6, ls=":")
        ax.add_patch(_box(r))
        ax.set_title(f"{im.id}{tag}: expert green, system red, baseline blue dotted",
                     fontsize=7)
        ax.set_axis_off()
    fig.savefig(path, dpi=100)


def _box(r: Roi) -> Any:
    from matplotlib.patches import Rectangle  # noqa: PLC0415 (matplotlib on demand)

    return Rectangle((r.left - 0.5, r.top - 0.5), r.right - r.left, r.bottom - r.top,
                     fill=False, color="yellow", lw=0.6)


def make(data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
         val_fraction: float = 0.2, options: str = "",
         split: str = "") -> CimtApp:
    """The registry's factory: ``--app=cimt --data=... --preset=... --data_seed=...
    --app_options=NAME=VALUE,...``."""
    return from_preset(CimtApp, PRESETS, data, preset, data_seed, val_fraction, options,
                       split)
