"""Application ``pe``: pulmonary embolism detection in CT pulmonary angiography (PAPER.md, 2).

    python -m ftjax.train --app=pe --tune_from=conv3                    # SYNTHETIC scans
    python -m ftjax.train --app=pe --data=cadpe:/data/CAD-PE --preset=paper

Scans (SYNTHETIC by default, or CAD-PE / FUMPE on disk) are split by patient into train and test;
tobogganing finds the candidates of every scan (``ftjax.apps.pe.toboggan``); each candidate is shown
as 54 vessel-aligned patches (``ftjax.apps.pe.vessel``); the patches are cut once and cached as a
TFDS data set (``ftjax.data.patch_dataset``). A candidate is a true PE candidate when its centre
lies in a clot of the instance mask; the clot it hits and every scan's number of clots are stored
at generation time, so ``evaluate`` can build the per-scan hits: the FROC of sensitivity per PE
against false positives per volume, with bootstrap 95% intervals over patients, compared with the
candidate generator's own ordering (candidate size; candidate darkness).

Data on SYNTHETIC scans is a demonstration of the pipeline and never a medical finding: every
output of such a run says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftjax.apps.pe import readers as pe_readers
from ftjax.apps.pe.ct import CTScan
from ftjax.apps.pe.synthetic import synthetic_scan
from ftjax.apps.pe.toboggan import (
    GeneratorStats,
    TobogganConfig,
    candidate_labels,
    find_candidates,
    lumen_mask,
)
from ftjax.apps.pe.vessel import vessel_axes, vessel_patches
from ftjax.apps.protocol import ArrayPatches
from ftjax.data.patch_dataset import (
    CaseTable,
    DatasetSpec,
    PatchDataset,
    StoredCandidates,
    TrainingRecords,
    build_or_load,
)
from ftjax.data.splits import split_cases
from ftjax.metrics import CaseHits, compare_froc, froc_from_cases

DATASETS = ("cadpe", "fumpe")  # the readers of ftjax.apps.pe.readers
FP_RATES = (1.0, 2.0, 3.0, 4.0, 5.0)  # [paper] operating points, false positives per volume
SYNTHETIC_NOTE = ("SYNTHETIC CTPA volumes (ftjax.apps.pe.synthetic): a demonstration of the "
                  "pipeline, not patients and not a medical finding")
_SEEDS_PER_APP_SEED = 100_000  # synthetic scan i of app seed s is synthetic_scan(s * this + i)
# Per-candidate fields stored with the test records (and read back by evaluate).
INFO_FIELDS = {"clot": ((), "int32"), "centre": ((3,), "float32"), "axis": ((3,), "float32"),
               "mean_hu": ((), "float32"), "min_hu": ((), "float32"),
               "volume_mm3": ((), "float32")}


@dataclasses.dataclass(frozen=True)
class PEData:
    """Where the scans come from: ``synthetic``, or a dataset reader and its folder."""

    kind: str
    root: Path | None = None

    @classmethod
    def parse(cls, text: str) -> PEData:
        """``synthetic`` | ``cadpe:DIR`` | ``fumpe:DIR`` (the ``--data`` flag)."""
        if text == "synthetic":
            return cls("synthetic")
        name, sep, root = text.partition(":")
        if not sep or name not in DATASETS or not root:
            raise ValueError(f"--data={text!r} is not a PE data source; expected 'synthetic', "
                             f"{', '.join(repr(f'{d}:DIR') for d in DATASETS)}")
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such directory (--data={text})")
        return cls(name, path)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the input files: a changed, added or removed file gives a new cache
        key (name, size and modification time of every file under the folder)."""
        if self.root is None:
            return {"kind": self.kind}
        files = sorted(p for p in self.root.rglob("*") if p.is_file())
        stats = [(str(p.relative_to(self.root)), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in files]
        digest = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:20]
        return {"kind": self.kind, "root": str(self.root), "files": len(stats),
                "stat_hash": digest}


@dataclasses.dataclass(frozen=True)
class PESettings:
    """What a preset sets. Everything except the scoring fields is part of the data set's cache key.

    scans / shape / spacing: how many SYNTHETIC volumes, of what size. max_cases: with real data,
      at most this many patients (a seeded subset; None: all). test_fraction: patients held out for
      test. widths_mm / shift_fractions / rotations: the augmentation grid (paper: 3 x 3 x 6 = 54).
      max_train_patches: the stratified training sample (paper: 81,000).
      score_augmentations: indices of the patches averaged per test candidate (None: all of them).
      n_boot: bootstrap resamples of the FROC intervals.
    """

    scans: int = 121
    max_cases: int | None = None
    shape: tuple[int, int, int] = (64, 128, 128)
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0)
    test_fraction: float = 0.4
    widths_mm: tuple[float, ...] = (10.0, 15.0, 20.0)
    shift_fractions: tuple[float, ...] = (-0.2, 0.0, 0.2)
    rotations: int = 6
    patch_size: int = 32
    hu_window: tuple[float, float] = (-1000.0, 1000.0)
    max_train_patches: int = 81_000
    toboggan: TobogganConfig = TobogganConfig()
    score_augmentations: tuple[int, ...] | None = None
    n_boot: int = 1000

    @property
    def patches_per_candidate(self) -> int:
        return len(self.widths_mm) * len(self.shift_fractions) * self.rotations

    def augmentation(self, width: int, shift: int, rotation: int) -> int:
        """Index of one patch in a candidate's K (ftjax.apps.pe.vessel's order)."""
        grid = (len(self.widths_mm), len(self.shift_fractions), self.rotations)
        return int(np.ravel_multi_index((width, shift, rotation), grid))


# [paper] 121 scans, 54 patches per candidate, 81,000 training patches; test share [assumed]
# from the paper's PE counts (127 of 326 PEs in test, so about 40% of the patients).
PAPER = PESettings()
# Minutes on a 2-core CPU: 24 SYNTHETIC scans (18 train / 6 test; with real data 24 patients, far
# slower to load and search than the small synthetic volumes), 1,200 training patches drawn
# from all 54 augmentations, and 6 of the 54 patches scored per test candidate (widths 10/15/20
# mm, no shift, rotations 0 and 180 degrees), since scoring costs 1 network pass per patch.
SMOKE = dataclasses.replace(
    PAPER, scans=24, max_cases=24, test_fraction=0.25, max_train_patches=1200,
    score_augmentations=tuple(PAPER.augmentation(w, 1, r) for w in range(3) for r in (0, 3)))
PRESETS = {"smoke": SMOKE, "paper": PAPER}


@dataclasses.dataclass(frozen=True, eq=False)
class PECandidates:
    """``CandidateSource.info`` of the PE app: per candidate its scan, the clot it hits (0: none)
    and what the generator knows of it; per test scan its number of clots (a scan without
    candidates still counts: its clots are missed)."""

    case: np.ndarray  # str [C]
    clot: np.ndarray  # int32 [C]
    mean_hu: np.ndarray  # float32 [C]
    volume_mm3: np.ndarray  # float32 [C]
    clots_per_scan: Mapping[str, int]


def case_hits(scores: np.ndarray, clots: np.ndarray, num_clots: int) -> CaseHits:
    """One scan's FROC outcome from each candidate's clot id: several candidates on one clot count
    once at their best score and are not false positives; candidates on no clot are."""
    return CaseHits.from_assignments(scores, np.where(clots > 0, clots, -1), num_clots)


class _ScanPatches:
    """The PatchProducer of the PE data set: candidates, then vessel-aligned patches, per scan."""

    def __init__(self, app: PEApp):
        self.app = app
        self.frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # case -> (centres, axes)

    def table(self, case: str) -> CaseTable:
        scan, cfg = self.app.load_scan(case), self.app.settings.toboggan
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
        scan, s = self.app.load_scan(case), self.app.settings
        centres, axes = self.frames[case]
        return vessel_patches(scan.hu, scan.spacing, centres[candidates], axes[candidates],
                              s.widths_mm, s.shift_fractions, s.rotations, s.patch_size,
                              s.hu_window)


class PEApp:
    """The PE application (``ftjax.apps.protocol.Application``)."""

    name = "pe"
    classes = ("background", "pe")

    def __init__(self, data: str = "synthetic", settings: PESettings = SMOKE, seed: int = 0,
                 log: Callable[[str], None] | None = print):
        self.data, self.settings, self.seed, self.log = PEData.parse(data), settings, seed, log
        self.synthetic = self.data.kind == "synthetic"
        self._scan_seeds: dict[str, int] = {}
        if not 0 < settings.test_fraction < 1:
            raise ValueError(f"test_fraction={settings.test_fraction} must be in (0, 1)")
        cases = self._all_cases()
        if len(cases) < 3:
            raise ValueError(f"{self.data.root or 'synthetic'}: {len(cases)} case(s); the PE app "
                             "needs at least 3 (training, validation and test patients)")
        train, test = split_cases(cases, settings.test_fraction, seed)
        self._splits = {"train": tuple(train), "test": tuple(test)}
        self._spec = self._make_spec()
        self._dataset: PatchDataset | None = None
        self._training: TrainingRecords | None = None
        self._test_index: dict[str, np.ndarray] | None = None

    # --------------------------------------------------------------------------- cases, scans
    def _all_cases(self) -> list[str]:
        if self.synthetic:
            first = self.seed * _SEEDS_PER_APP_SEED
            self._scan_seeds = {f"synthetic-{s:05d}": s
                                for s in range(first, first + self.settings.scans)}
            return list(self._scan_seeds)
        cases = pe_readers.list_cases(self.data.kind, self.data.root)
        n = self.settings.max_cases
        if n is not None and n < len(cases):
            keep = np.random.default_rng([self.seed, 0x9E]).choice(len(cases), n, replace=False)
            cases = [cases[i] for i in sorted(keep)]
        return cases

    def load_scan(self, case: str) -> CTScan:
        """One scan of this app's data (SYNTHETIC scans are regenerated from their seed)."""
        if self.synthetic:
            if case not in self._scan_seeds:
                raise ValueError(f"unknown synthetic case {case!r}")
            s = self.settings
            return synthetic_scan(self._scan_seeds[case], shape=s.shape, spacing=s.spacing)
        return pe_readers.load_case(self.data.kind, self.data.root, case)

    def cases(self, split: str) -> Sequence[str]:
        """Patients of ``'train'`` or ``'test'`` (seeded split; no patient on both sides)."""
        if split not in self._splits:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return list(self._splits[split])

    # --------------------------------------------------------------------------- data set
    def spec(self) -> DatasetSpec:
        """The data set's parameters (its hash is the cache key), fixed when the app is made."""
        return self._spec

    def _make_spec(self) -> DatasetSpec:
        s = self.settings
        params = {"data": self.data.fingerprint(), "toboggan": dataclasses.asdict(s.toboggan),
                  "widths_mm": s.widths_mm, "shift_fractions": s.shift_fractions,
                  "rotations": s.rotations, "hu_window": s.hu_window}
        if self.synthetic:
            params |= {"shape": s.shape, "spacing": s.spacing}
        return DatasetSpec(app=self.name, params=params, train_cases=self._splits["train"],
                           test_cases=self._splits["test"],
                           patch_shape=(s.patch_size, s.patch_size, 3),
                           patches_per_candidate=s.patches_per_candidate, info_fields=INFO_FIELDS,
                           max_train_patches=s.max_train_patches, seed=self.seed)

    def dataset(self) -> PatchDataset:
        """The cached data set, generated on first use (progress lines go to ``log``)."""
        if self._dataset is None:
            self._dataset = build_or_load(self.spec(), _ScanPatches(self), self.log)
        return self._dataset

    def _check(self, cases: Sequence[str], split: str) -> None:
        unknown = sorted(set(cases) - set(self._splits[split]))
        if unknown:
            raise ValueError(f"cases {unknown[:5]} are not in the PE {split} split")

    def training_patches(self, cases: Sequence[str]) -> ArrayPatches:
        """The stored training patches of these (training) patients, in memory."""
        self._check(cases, "train")
        if self._training is None:
            self._training = self.dataset().training()
        rec = self._training
        position = {c: i for i, c in enumerate(cases)}
        keep = np.flatnonzero(np.isin(rec.cases, list(cases)))
        return ArrayPatches(rec.patches[keep], rec.labels[keep],
                            np.array([position[c] for c in rec.cases[keep]], np.int64))

    def test_candidates(self, cases: Sequence[str]) -> StoredCandidates:
        """Every candidate of these test patients, its patches read from disk on demand."""
        self._check(cases, "test")
        if self._test_index is None:
            self._test_index = self.dataset().test_index()
        index = self._test_index
        rows = np.flatnonzero(np.isin(index["case"], list(cases)))
        scans = self.dataset().meta["cases"]
        info = PECandidates(index["case"][rows], index["clot"][rows], index["mean_hu"][rows],
                            index["volume_mm3"][rows], {c: int(scans[c]["clots"]) for c in cases})
        return self.dataset().candidates(rows, self.settings.score_augmentations, info)

    # --------------------------------------------------------------------------- metric
    def evaluate(self, candidates: StoredCandidates, probabilities: np.ndarray,
                 outdir: Path) -> dict[str, Any]:
        """Per-PE FROC (sensitivity vs false positives per volume) of the network and of the
        generator's own ordering, sensitivities at 1..5 FP/volume with bootstrap 95% intervals
        over patients, the generator's sensitivity and candidates per scan; writes the figure."""
        info = candidates.info
        if not isinstance(info, PECandidates):
            raise ValueError("evaluate needs the candidates of PEApp.test_candidates")
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (len(info.case), len(self.classes)):
            raise ValueError(f"probabilities of shape {probs.shape}; expected "
                             f"({len(info.case)}, {len(self.classes)})")
        scans = list(info.clots_per_scan)
        generator = GeneratorStats(
            n_scans=len(scans), n_clots=sum(info.clots_per_scan.values()),
            n_clots_hit=len(set(zip(info.case[info.clot > 0], info.clot[info.clot > 0],
                                    strict=True))),
            n_candidates=len(info.case), n_true_candidates=int(np.sum(info.clot > 0)))
        results: dict[str, Any] = {
            "synthetic": self.synthetic, "data": SYNTHETIC_NOTE if self.synthetic
            else f"{self.data.kind} at {self.data.root}",
            "num_test_scans": len(scans), "num_clots": generator.n_clots,
            "generator": dataclasses.asdict(generator) | {
                "sensitivity": generator.sensitivity,
                "candidates_per_scan": generator.candidates_per_scan},
            "generator_sensitivity": generator.sensitivity,
            "candidates_per_scan": generator.candidates_per_scan,
            "fp_per_volume": list(FP_RATES),
            "patches_per_candidate_scored": int(self.settings.patches_per_candidate
                                                if self.settings.score_augmentations is None
                                                else len(self.settings.score_augmentations)),
        }
        if generator.n_clots == 0:
            results["froc"] = None
            results["froc_note"] = "the test scans hold no clots: sensitivity is undefined"
            return results
        scores = {"network": probs[:, 1], "baseline: size": info.volume_mm3.astype(np.float64),
                  "baseline: darkness": -info.mean_hu.astype(np.float64)}
        hits = {name: [case_hits(s[info.case == c], info.clot[info.case == c],
                                 info.clots_per_scan[c]) for c in scans]
                for name, s in scores.items()}
        # Bootstrap over patients (one scan per patient in CAD-PE, FUMPE and the synthetic set).
        pairs = compare_froc(hits, FP_RATES, clusters=scans, n_boot=self.settings.n_boot,
                             seed=self.seed)
        boots = {}
        for (a, b), p in pairs.items():
            boots[a], boots[b] = p.a, p.b
        at2 = FP_RATES.index(2.0)
        froc = {name: {"sensitivity": b.estimate.tolist(), "low": b.low.tolist(),
                       "high": b.high.tolist(), "froc_score": b.summary,
                       "froc_score_low": b.summary_low, "froc_score_high": b.summary_high}
                for name, b in boots.items()}
        versus = {b: {"diff": p.diff.tolist(), "low": p.diff_low.tolist(),
                      "high": p.diff_high.tolist(), "p_value": p.p_value.tolist(),
                      "froc_score_diff": p.summary_diff,
                      "froc_score_p_value": p.summary_p_value}
                  for (a, b), p in pairs.items() if a == "network"}
        from ftjax.metrics.plots import plot_froc  # noqa: PLC0415 (matplotlib on demand)

        title = "PE" + (" (SYNTHETIC data)" if self.synthetic else f" ({self.data.kind})")
        figure = plot_froc({name: froc_from_cases(h) for name, h in hits.items()}, outdir,
                           bands=boots, per="volume", x_limits=(0.0, 10.0), title=title)
        results |= {
            "froc": froc, "network_minus_baseline": versus, "figure": str(figure),
            "froc_score_definition": "mean sensitivity at 1, 2, 3, 4, 5 FP/volume",
            "sensitivity_at_2fp": froc["network"]["sensitivity"][at2],
            "froc_score": froc["network"]["froc_score"],
            "baseline_size_sensitivity_at_2fp": froc["baseline: size"]["sensitivity"][at2],
            "baseline_darkness_sensitivity_at_2fp":
                froc["baseline: darkness"]["sensitivity"][at2],
        }
        return results


def make(data: str = "synthetic", preset: str = "smoke", seed: int = 0) -> PEApp:
    """The registry's factory: ``--app=pe --data=... --preset=... --seed=...``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for the PE app; expected {tuple(PRESETS)}")
    return PEApp(data, PRESETS[preset], seed)
