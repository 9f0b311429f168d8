"""Application ``pe``: pulmonary embolism detection in CT pulmonary angiography (PAPER.md, 2).

    python -m ftjax.train --app=pe --tune_from=conv3                    # SYNTHETIC scans
    python -m ftjax.train --app=pe --data=cadpe:/data/CAD-PE --preset=paper

Scans (SYNTHETIC by default, or CAD-PE / FUMPE on disk) are split by patient; tobogganing finds
the candidates of every scan (``ftjax.apps.pe.toboggan``); each candidate is shown as 54
vessel-aligned patches (``ftjax.apps.pe.vessel``: 3 widths x 3 shifts along the vessel x 6
rotations about it). A candidate is a true PE candidate when its centre lies in a clot of the
instance mask. The metric is the FROC of sensitivity per PE against false positives per volume,
several candidates on one PE counting once, with bootstrap 95% intervals over patients, compared
with the candidate generator's own orderings (candidate size; candidate darkness).

Results on SYNTHETIC scans are a demonstration of the pipeline and never a medical finding: every
output of such a run says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftjax.apps.candidates import CandidateApp, CandidateSettings, from_preset
from ftjax.apps.pe import readers
from ftjax.apps.pe.ct import CTScan
from ftjax.apps.pe.presets import STUDY
from ftjax.apps.pe.synthetic import synthetic_scan
from ftjax.apps.pe.toboggan import (
    GeneratorStats,
    TobogganConfig,
    candidate_labels,
    find_candidates,
    lumen_mask,
)
from ftjax.apps.pe.vessel import vessel_axes, vessel_patches
from ftjax.apps.protocol import TestResult
from ftjax.data.patch_dataset import CaseTable
from ftjax.metrics import compare_froc, froc_from_cases
from ftjax.predictions import Predictions, froc_hits, headline

FP_RATES = STUDY["operating_points"]  # [paper] false positives per volume
SYNTHETIC_NOTE = ("SYNTHETIC CTPA volumes (ftjax.apps.pe.synthetic): a demonstration of the "
                  "pipeline, not patients and not a medical finding")
_SEEDS_PER_DATA_SEED = 100_000  # synthetic scan i of data seed s is synthetic_scan(s * this + i)
# Per-candidate fields stored with the validation and test records.
INFO_FIELDS = {"clot": ((), "int32"), "centre": ((3,), "float32"), "axis": ((3,), "float32"),
               "mean_hu": ((), "float32"), "min_hu": ((), "float32"),
               "volume_mm3": ((), "float32")}


@dataclasses.dataclass(frozen=True)
class PESettings(CandidateSettings):
    """What a preset sets beyond ``CandidateSettings``. Everything except the scoring fields is
    part of the data set's cache key.

    scans / shape / spacing: how many SYNTHETIC volumes, of what size. widths_mm /
    shift_fractions / rotations: the augmentation grid (paper: 3 x 3 x 6 = 54). toboggan: the
    candidate generator. hu_window: CT window mapped to 0..255 [assumed: -1000..1000 HU].
    """

    scans: int = 121
    shape: tuple[int, int, int] = (64, 128, 128)
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0)
    widths_mm: tuple[float, ...] = (10.0, 15.0, 20.0)
    shift_fractions: tuple[float, ...] = (-0.2, 0.0, 0.2)
    rotations: int = 6
    hu_window: tuple[float, float] = (-1000.0, 1000.0)
    toboggan: TobogganConfig = TobogganConfig()

    @property
    def patches_per_candidate(self) -> int:
        return len(self.widths_mm) * len(self.shift_fractions) * self.rotations

    def augmentation(self, width: int, shift: int, rotation: int) -> int:
        """Index of one patch in a candidate's K (ftjax.apps.pe.vessel's order)."""
        grid = (len(self.widths_mm), len(self.shift_fractions), self.rotations)
        return int(np.ravel_multi_index((width, shift, rotation), grid))

    def unshifted_halfturns(self) -> tuple[int, ...]:
        """6 of the 54 patches: every width, no shift, rotations 0 and 180 degrees."""
        return tuple(self.augmentation(w, len(self.shift_fractions) // 2, r)
                     for w in range(len(self.widths_mm)) for r in (0, self.rotations // 2))


# [paper] 121 scans, 54 patches per candidate, 81,000 training patches; test share [assumed]
# from the paper's PE counts (127 of 326 PEs in test, so about 40% of the patients). Validation
# candidates are scored every epoch by the mean over 6 of their 54 patches (all 54 would cost
# about 12 minutes per epoch on a CPU at this preset) [assumed]; test candidates by all 54.
_BASE = PESettings()
PAPER = dataclasses.replace(_BASE, validation_augmentations=_BASE.unshifted_halfturns())
# Minutes on a 2-core CPU: 24 SYNTHETIC scans (18 train, of which 4 validation, and 6 test; with
# real data 24 patients, far slower to load and search than the small synthetic volumes), 1,200
# training patches drawn from all 54 augmentations, and 6 of the 54 patches scored per
# validation and test candidate, since scoring costs one network pass per patch.
SMOKE = dataclasses.replace(PAPER, scans=24, max_cases=24, test_fraction=0.25,
                            max_train_patches=1200,
                            score_augmentations=_BASE.unshifted_halfturns())
PRESETS = {"smoke": SMOKE, "paper": PAPER}


class _ScanPatches:
    """The PatchProducer of the PE data set: candidates, then vessel-aligned patches, per scan."""

    def __init__(self, app: PEApp, labelled: bool):
        self.app, self.labelled = app, labelled
        self.frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # case -> (centres, axes)

    def table(self, case: str) -> CaseTable:
        scan, cfg = self.app.load_scan(case, self.labelled), self.app.settings.toboggan
        lumen = lumen_mask(scan.hu, scan.spacing, cfg)
        cands = find_candidates(scan.hu, scan.spacing, cfg, lumen=lumen)
        axes = vessel_axes(cands, scan.spacing, lumen)
        clot = candidate_labels(cands, scan.clots)
        self.frames[case] = (cands.centres, axes)
        info = {"clot": clot, "centre": cands.centres, "axis": axes, "mean_hu": cands.mean_hu,
                "min_hu": cands.min_hu, "volume_mm3": cands.sizes * float(np.prod(scan.spacing))}
        meta = {"clots": scan.n_clots, "clots_hit": int(np.unique(clot[clot > 0]).size),
                "source": scan.source, "shape": list(scan.shape), "spacing": list(scan.spacing)}
        return CaseTable((clot > 0).astype(np.int32), info, meta)

    def patches(self, case: str, candidates: np.ndarray) -> np.ndarray:
        scan, s = self.app.load_scan(case, self.labelled), self.app.settings
        centres, axes = self.frames[case]
        return vessel_patches(scan.hu, scan.spacing, centres[candidates], axes[candidates],
                              s.widths_mm, s.shift_fractions, s.rotations, s.patch_size,
                              s.hu_window)


class PEApp(CandidateApp):
    """The PE application (``ftjax.apps.protocol.Application``)."""

    name = "pe"
    classes = ("background", "pe")
    reduction_unit = "PEs"
    DATASETS = readers.DATASETS
    INFO_FIELDS = INFO_FIELDS
    settings: PESettings

    def __init__(self, data: str = "synthetic", settings: PESettings = SMOKE, data_seed: int = 0,
                 val_fraction: float = 0.2, log: Any = print):
        super().__init__(data, settings, data_seed, val_fraction, log)

    def list_cases(self) -> list[str]:
        if self.synthetic:
            return [f"synthetic-{i:05d}" for i in range(self.settings.scans)]
        return readers.list_cases(self.source.kind, self.source.root)

    def load_scan(self, case: str, labelled: bool = True) -> CTScan:
        """One scan of this app's data (SYNTHETIC scans are regenerated from their seed)."""
        if self.synthetic:
            name, _, number = case.partition("-")
            if name != "synthetic" or not number.isdigit() or int(number) >= self.settings.scans:
                raise ValueError(f"unknown synthetic case {case!r}")
            s = self.settings
            return synthetic_scan(self.data_seed * _SEEDS_PER_DATA_SEED + int(number),
                                  shape=s.shape, spacing=s.spacing)
        return readers.load_case(self.source.kind, self.source.root, case, masks=labelled)

    def producer(self, labelled: bool = True) -> _ScanPatches:
        return _ScanPatches(self, labelled)

    def generation_params(self) -> dict[str, Any]:
        s = self.settings
        params = {"toboggan": dataclasses.asdict(s.toboggan), "widths_mm": s.widths_mm,
                  "shift_fractions": s.shift_fractions, "rotations": s.rotations,
                  "hu_window": s.hu_window}
        if self.synthetic:
            params |= {"shape": s.shape, "spacing": s.spacing}
        else:  # data sets read by older, too trusting readers must not be reused
            params |= {"readers": readers.FORMAT_VERSION}
        return params

    def units(self, cases: Sequence[str]) -> np.ndarray:
        """PEs (clots) per patient: the paper reduces training sets by share of the PEs."""
        return np.array([self.case_facts(c)["clots"] for c in cases], np.float64)

    # ------------------------------------------------------------------ the paper's metric
    def test_result(self, index: Mapping[str, np.ndarray], probabilities: np.ndarray,
                    outdir: Path) -> TestResult:
        """Per-PE FROC (sensitivity vs false positives per volume) of the network, with
        bootstrap 95% intervals over patients at 1..5 FP/volume, and of the generator's own
        orderings on the same candidates; writes the figure."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (len(index["case"]), len(self.classes)):
            raise ValueError(f"probabilities of shape {probs.shape}; expected "
                             f"({len(index['case'])}, {len(self.classes)})")
        cases = self.cases("test")
        clots = {c: int(self.case_facts(c)["clots"]) for c in cases}
        centre = index["centre"]
        predictions = Predictions(
            app=self.name, synthetic=self.synthetic,
            metric={"kind": "froc", "name": f"sensitivity at {STUDY['headline_at']:g} FP/volume",
                    "per": "volume", "at": STUDY["headline_at"],
                    "operating_points": list(FP_RATES), "n_boot": self.settings.n_boot,
                    "seed": self.data_seed},
            columns={"case": index["case"], "cluster": index["case"],
                     "item": index["candidate"].astype(str), "truth": index["label"],
                     "score": probs[:, 1], "lesion": np.where(index["clot"] > 0,
                                                              index["clot"], -1),
                     "z": centre[:, 0], "y": centre[:, 1], "x": centre[:, 2],
                     "volume_mm3": index["volume_mm3"], "mean_hu": index["mean_hu"],
                     "baseline_size": index["volume_mm3"],
                     "baseline_darkness": -index["mean_hu"]},
            cases={c: {"cluster": c, "lesions": clots[c]} for c in cases},
            descriptions={"z": "candidate centre, voxels (z, y, x)", "y": "", "x": "",
                          "volume_mm3": "candidate (toboggan cluster) volume",
                          "mean_hu": "candidate mean HU",
                          "baseline_size": "the generator's size ordering (volume)",
                          "baseline_darkness": "the generator's darkness ordering (-mean HU)"})
        truth = index["clot"]
        generator = GeneratorStats(
            n_scans=len(cases), n_clots=sum(clots.values()),
            n_clots_hit=len(set(zip(index["case"][truth > 0], truth[truth > 0], strict=True))),
            n_candidates=len(truth), n_true_candidates=int(np.sum(truth > 0)))
        summary: dict[str, Any] = {
            "data": SYNTHETIC_NOTE if self.synthetic
            else f"{self.source.kind} at {self.source.root}",
            "num_test_scans": len(cases), "num_clots": generator.n_clots,
            "generator": dataclasses.asdict(generator) | {
                "sensitivity": generator.sensitivity,
                "candidates_per_scan": generator.candidates_per_scan},
            "fp_per_volume": list(FP_RATES),
            "patches_per_candidate_scored": self.patches_per_scored_candidate,
        }
        if generator.n_clots == 0:
            summary |= {"froc": None, "froc_note": "the test scans hold no clots: per-PE "
                        "sensitivity is undefined (more scans, or another --data_seed)"}
            return TestResult(headline(predictions), predictions, summary)
        scorers = {"network": "score", "baseline: size": "baseline_size",
                   "baseline: darkness": "baseline_darkness"}
        hits = {name: froc_hits(predictions.with_score(col)) for name, col in scorers.items()}
        # One resample set for all three orderings: paired differences against the network.
        pairs = compare_froc(hits, FP_RATES, clusters=cases, n_boot=self.settings.n_boot,
                             seed=self.data_seed)
        boots = {}
        for (a, b), p in pairs.items():
            boots[a], boots[b] = p.a, p.b
        summary["froc"] = {name: {"sensitivity": b.estimate.tolist(), "low": b.low.tolist(),
                                  "high": b.high.tolist(), "froc_score": b.summary,
                                  "froc_score_low": b.summary_low,
                                  "froc_score_high": b.summary_high}
                           for name, b in boots.items()}
        summary["network_minus_baseline"] = {
            b: {"diff": p.diff.tolist(), "low": p.diff_low.tolist(), "high": p.diff_high.tolist(),
                "p_value": p.p_value.tolist(), "froc_score_diff": p.summary_diff,
                "froc_score_p_value": p.summary_p_value}
            for (a, b), p in pairs.items() if a == "network"}
        from ftjax.metrics.plots import plot_froc  # noqa: PLC0415 (matplotlib on demand)

        title = "PE" + (" (SYNTHETIC data)" if self.synthetic else f" ({self.source.kind})")
        summary["figure"] = str(plot_froc(
            {name: froc_from_cases(h) for name, h in hits.items()}, outdir, bands=boots,
            per="volume", x_limits=STUDY["figure"]["x_limits"], title=title))
        summary["froc_score_definition"] = "mean sensitivity at 1, 2, 3, 4, 5 FP/volume"
        return TestResult(headline(predictions), predictions, summary)

    # ------------------------------------------------------------------ new cases
    def describe(self, table: CaseTable) -> dict[str, np.ndarray]:
        centre = np.asarray(table.info["centre"]).reshape(-1, 3)
        spacing = np.asarray(table.meta["spacing"], np.float64)
        return {"z": centre[:, 0], "y": centre[:, 1], "x": centre[:, 2],
                "z_mm": centre[:, 0] * spacing[0], "y_mm": centre[:, 1] * spacing[1],
                "x_mm": centre[:, 2] * spacing[2],
                "volume_mm3": np.asarray(table.info["volume_mm3"]),
                "mean_hu": np.asarray(table.info["mean_hu"])}

    def plot_case(self, case: str, table: CaseTable, scores: np.ndarray, path: Path) -> None:
        """Axial and coronal mean-intensity projections of the scan with every candidate
        marked, coloured by its score."""
        from matplotlib.figure import Figure  # noqa: PLC0415 (matplotlib on demand)

        hu = self.load_scan(case, labelled=False).hu
        centre = np.asarray(table.info["centre"]).reshape(-1, 3)
        fig = Figure(figsize=(9, 4.5))
        for ax, axis, (i, j), name in zip(fig.subplots(1, 2), (0, 1), ((2, 1), (2, 0)),
                                          ("axial (mean over z)", "coronal (mean over y)"),
                                          strict=True):
            ax.imshow(np.clip(hu.mean(axis=axis), -1000, 500), cmap="gray")
            marks = ax.scatter(centre[:, i], centre[:, j], c=scores, cmap="autumn_r", vmin=0,
                               vmax=1, s=18, edgecolors="k", linewidths=0.3)
            ax.set_title(name, fontsize=9)
            ax.set_axis_off()
        fig.colorbar(marks, ax=fig.axes, label="PE score")
        tag = " (SYNTHETIC)" if self.synthetic else ""
        fig.suptitle(f"{case}{tag}: {len(scores)} candidates", fontsize=10)
        fig.savefig(path, dpi=90)


def make(data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
         val_fraction: float = 0.2, options: str = "",
         split: str = "") -> PEApp:
    """The registry's factory: ``--app=pe --data=... --preset=... --data_seed=...
    --app_options=NAME=VALUE,...``."""
    return from_preset(PEApp, PRESETS, data, preset, data_seed, val_fraction, options,
                       split)
