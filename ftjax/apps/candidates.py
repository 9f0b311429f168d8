"""The base of the applications whose test scores candidates (PAPER.md, "Test-time scoring").

A candidate application (``pe``, ``polyp``, ``frames``) finds candidates in every case,
shows each as K augmented patches, trains on a stratified sample of (candidate, augmentation)
patches and scores a candidate by the mean probability over its patches. Everything that is not
about one application lives here once: where the data comes from (``synthetic`` or
``DATASET:DIR``), the seeded case splits (test, then validation, by the data seed), the cached
patch data set (``ftjax.data.patch_dataset``), training patches, validation and test candidates,
the test through the trainer's scorer, and prediction on new, unlabelled cases.

A subclass supplies its ``settings`` (a :class:`CandidateSettings`), ``DATASETS``, and:
``list_cases`` (ids of the source's cases), ``producer`` (a ``PatchProducer``: candidates and
patches per case), ``generation_params`` (what else the data set depends on), ``units`` (the
paper's reduction unit per case), ``test_result`` (the paper's metric from the scored test
candidates) and ``describe`` / ``plot_case`` (what ``python -m ftjax.predict`` writes per case).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftjax.apps.protocol import ArrayCandidates, ArrayPatches, CandidateSource, TestResult
from ftjax.data.patch_dataset import (
    CaseTable,
    DatasetSpec,
    PatchDataset,
    PatchProducer,
    StoredCandidates,
    TrainingRecords,
    build_or_load,
)
from ftjax.data.splits import VALIDATION_STREAM, SplitPlan, split_cases

Log = Callable[[str], None] | None


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where the cases come from: ``synthetic``, or a dataset reader's name and its folder."""

    kind: str
    root: Path | None = None

    @classmethod
    def parse(cls, text: str, datasets: Sequence[str], app: str) -> DataSource:
        """``synthetic`` | ``NAME:DIR`` for a NAME in ``datasets`` (the ``--data`` flag)."""
        if text == "synthetic":
            return cls("synthetic")
        name, sep, root = text.partition(":")
        if not sep or name not in datasets or not root:
            raise ValueError(f"--data={text!r} is not a {app} data source; expected 'synthetic'"
                             f"{''.join(f', {d!r}:DIR' for d in datasets)}")
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such directory (--data={text})")
        return cls(name, path)

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

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
class CandidateSettings:
    """What every candidate application's preset sets (an application's settings extend it).

    max_cases: with real data, at most this many cases (a seeded subset; None: all).
    test_fraction: cases held out for test. patch_size: side of the stored patches.
    max_train_patches: the stratified training sample, from the training cases only.
    score_augmentations: indices of the patches averaged per test candidate (None: all K).
    validation_augmentations: the same for the validation candidates scored every epoch.
    n_boot: bootstrap resamples of the test metric's intervals.
    """

    max_cases: int | None = None
    test_fraction: float = 0.4
    patch_size: int = 32
    max_train_patches: int = 81_000
    score_augmentations: tuple[int, ...] | None = None
    validation_augmentations: tuple[int, ...] | None = None
    n_boot: int = 1000

    @property
    def patches_per_candidate(self) -> int:
        raise NotImplementedError

    def check(self) -> None:
        """Raise a ValueError naming the first setting out of its range."""
        k = self.patches_per_candidate
        for name in ("max_train_patches", "patch_size", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"setting {name}={getattr(self, name)} must be >= 1")
        if self.max_cases is not None and self.max_cases < 3:
            raise ValueError(f"setting max_cases={self.max_cases} must be >= 3 (or none)")
        for name in ("score_augmentations", "validation_augmentations"):
            augs = getattr(self, name)
            if augs is not None and (not augs or min(augs) < 0 or max(augs) >= k):
                raise ValueError(f"setting {name}={augs} must index the {k} patches of a "
                                 "candidate (or be none: all)")


def with_options(settings: Any, text: str, app: str) -> Any:
    """``settings`` (a frozen dataclass) with ``--app_options`` applied: ``NAME=VALUE`` pairs
    separated by commas, a dotted NAME reaching into a nested dataclass (``detector.sigma``),
    each VALUE read as the type of the value it replaces (a tuple as ``:``-separated items,
    ``none`` where the setting may be unset)."""
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--app_options: {pair!r} is not NAME=VALUE")
        settings = _replace_path(settings, name.strip().split("."), value.strip(), app, name)
    settings.check()
    return settings


def from_preset(cls: type, presets: Mapping[str, Any], data: str, preset: str, data_seed: int,
                val_fraction: float, options: str, split: str = "") -> Any:
    """Every candidate app's registry factory: ``cls`` on ``presets[preset]`` with the
    ``--app_options`` applied, testing on the cases ``split`` names (``SplitPlan.parse``)."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for the {cls.name} app; expected "
                         f"{tuple(presets)}")
    app = cls(data, with_options(presets[preset], options, cls.name), data_seed, val_fraction)
    app.test_split = SplitPlan.parse(split)
    return app


def _replace_path(obj: Any, path: list[str], value: str, app: str, name: str) -> Any:
    fields = {f.name for f in dataclasses.fields(obj)}
    if path[0] not in fields:
        raise ValueError(f"--app_options: the {app} app has no setting {name!r} (settings: "
                         f"{', '.join(sorted(fields))})")
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"--app_options: {name!r}: {path[0]} has no sub-settings")
        new = _replace_path(current, path[1:], value, app, name)
    else:
        new = _parse_value(current, value, name)
    try:
        return dataclasses.replace(obj, **{path[0]: new})
    except (TypeError, ValueError) as e:
        raise ValueError(f"--app_options: {name}={value!r}: {e}") from e


def _parse_value(current: Any, value: str, name: str) -> Any:
    if value.lower() == "none" and (current is None or isinstance(current, tuple)):
        return None
    if dataclasses.is_dataclass(current):
        raise ValueError(f"--app_options: {name!r} is a group of settings; name one of its "
                         "fields (NAME.FIELD=VALUE)")
    if isinstance(current, tuple) or current is None:
        kind = type(current[0]) if current else int
        return tuple(_scalar(kind, item, name) for item in value.split(":") if item)
    return _scalar(type(current), value, name)


def _scalar(kind: type, value: str, name: str) -> Any:
    if kind is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--app_options: {name}={value!r} is not true or false")
        return value.lower() in ("true", "1")
    try:
        out = kind(value)
    except ValueError:
        raise ValueError(f"--app_options: {name}={value!r} is not a {kind.__name__}") from None
    if isinstance(out, float) and not np.isfinite(out):
        raise ValueError(f"--app_options: {name}={value!r} is not a finite number")
    return out


class CandidateApp:
    """Splits, data set, patches and candidates of a candidate application (see module doc)."""

    name: str
    classes: tuple[str, ...]
    reduction_unit: str
    DATASETS: tuple[str, ...] = ()
    INFO_FIELDS: Mapping[str, tuple[tuple[int, ...], str]] = {}

    def __init__(self, data: str, settings: CandidateSettings, data_seed: int = 0,
                 val_fraction: float = 0.2, log: Log = print):
        self.settings, self.data_seed, self.val_fraction, self.log = (settings, data_seed,
                                                                      val_fraction, log)
        self.source = DataSource.parse(data, self.DATASETS, self.name)
        self.synthetic = self.source.synthetic
        if not 0 < settings.test_fraction < 1:
            raise ValueError(f"test_fraction={settings.test_fraction} must be in (0, 1)")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction={val_fraction} must be in (0, 1)")
        self.test_split = SplitPlan()  # the factory's ``split``: which cases test
        self._splits: dict[str, tuple[str, ...]] | None = None
        self._spec: DatasetSpec | None = None
        self._dataset: PatchDataset | None = None
        self._training: TrainingRecords | None = None
        self._index: dict[str, dict[str, np.ndarray]] = {}

    # ------------------------------------------------------------------ to implement
    def list_cases(self) -> list[str]:
        """Every case id of the data source (read no image data)."""
        raise NotImplementedError

    def producer(self, labelled: bool = True) -> PatchProducer:
        """Candidates and their K patches per case (``labelled=False``: new cases without a
        reference; labels are then meaningless and not used)."""
        raise NotImplementedError

    def generation_params(self) -> dict[str, Any]:
        """Everything else the stored patches depend on (part of the cache key)."""
        raise NotImplementedError

    def units(self, cases: Sequence[str]) -> np.ndarray:
        """Per training case its number of ``reduction_unit``."""
        raise NotImplementedError

    def test_result(self, index: Mapping[str, np.ndarray], probabilities: np.ndarray,
                    outdir: Path) -> TestResult:
        """The paper's metric from every test candidate's record and mean probabilities."""
        raise NotImplementedError

    def describe(self, table: CaseTable) -> dict[str, np.ndarray]:
        """Per candidate of a new case the columns ``predict`` writes (position, size, ...)."""
        raise NotImplementedError

    def plot_case(self, case: str, table: CaseTable, scores: np.ndarray, path: Path) -> None:
        """A figure of one new case with its scored candidates."""
        raise NotImplementedError

    # ------------------------------------------------------------------ cases and splits
    def all_cases(self) -> list[str]:
        """The cases this app works on: every case of the source, or a seeded subset of
        ``max_cases`` of a real data set."""
        cases = self.list_cases()
        n = self.settings.max_cases
        if not self.synthetic and n is not None and n < len(cases):
            keep = np.random.default_rng([self.data_seed, 0x9E]).choice(len(cases), n,
                                                                        replace=False)
            cases = [cases[i] for i in sorted(keep)]
        return cases

    def _split(self) -> dict[str, tuple[str, ...]]:
        if self._splits is None:
            cases = self.all_cases()
            where = self.source.root or "synthetic"
            role = self.test_split.role
            need, roles = {"test": (1, "test"), "train": (2, "training and validation")}.get(
                role, (3, "training, validation and test"))
            if len(cases) < need:
                raise ValueError(f"{where}: {len(cases)} case(s); the {self.name} app needs at "
                                 f"least {need} ({roles})")
            try:
                train, test = self.test_split.divide(cases, self.settings.test_fraction,
                                                     self.data_seed)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from e
            fit, val = (split_cases(train, self.val_fraction, self.data_seed, VALIDATION_STREAM)
                        if train else ([], []))
            self._splits = {"train": tuple(fit), "validation": tuple(val), "test": tuple(test)}
        return self._splits

    def cases(self, split: str) -> list[str]:
        """Cases of ``'train'``, ``'validation'`` or ``'test'`` (seeded by the data seed; the
        validation cases are split off the training side first, then never trained on)."""
        if split not in self._split():
            raise ValueError(f"unknown split {split!r}; expected 'train', 'validation' or 'test'")
        return list(self._split()[split])

    def _check(self, cases: Sequence[str], split: str) -> None:
        unknown = sorted(set(cases) - set(self.cases(split)))
        if unknown:
            raise ValueError(f"cases {unknown[:5]} are not in the {self.name} {split} split")

    # ------------------------------------------------------------------ data set
    @property
    def patches_per_scored_candidate(self) -> int:
        augs = self.settings.score_augmentations
        return self.settings.patches_per_candidate if augs is None else len(augs)

    @property
    def validation_metric(self) -> str:
        augs = self.settings.validation_augmentations
        k = self.settings.patches_per_candidate if augs is None else len(augs)
        return f"candidate AUC (mean over {k} of the {self.settings.patches_per_candidate} " \
               "patches of each validation candidate)"

    def spec(self) -> DatasetSpec:
        """The data set's parameters (its hash is the cache key), fixed at first use: the
        input files' fingerprint is taken once."""
        if self._spec is None:
            self._spec = self._make_spec()
        return self._spec

    def _make_spec(self) -> DatasetSpec:
        s = self.settings
        return DatasetSpec(
            app=self.name, params={"data": self.source.fingerprint(), **self.generation_params()},
            train_cases=tuple(self.cases("train")),
            validation_cases=tuple(self.cases("validation")), test_cases=tuple(self.cases("test")),
            patch_shape=(s.patch_size, s.patch_size, 3),
            patches_per_candidate=s.patches_per_candidate, info_fields=self.INFO_FIELDS,
            max_train_patches=s.max_train_patches, seed=self.data_seed,
            candidate_augmentations=self._scored_augmentations())

    def _scored_augmentations(self) -> tuple[int, ...] | None:
        """The patches a validation or test candidate is ever scored by (None: all K), the only
        ones its record stores."""
        scored = (self.settings.validation_augmentations, self.settings.score_augmentations)
        return None if None in scored else tuple(sorted(set().union(*scored)))

    def dataset(self) -> PatchDataset:
        """The cached data set, generated on first use (progress lines go to ``log``)."""
        if self._dataset is None:
            self._dataset = build_or_load(self.spec(), self.producer(), self.log)
        return self._dataset

    def case_facts(self, case: str) -> Mapping[str, Any]:
        """What the data set recorded of a case (its ``CaseTable.meta`` and candidate count)."""
        return self.dataset().meta["cases"][case]

    def training_patches(self, cases: Sequence[str]) -> ArrayPatches:
        """The stored training patches of these training cases, in memory."""
        self._check(cases, "train")
        if self._training is None:
            self._training = self.dataset().training()
        rec = self._training
        position = {c: i for i, c in enumerate(cases)}
        keep = np.flatnonzero(np.isin(rec.cases, list(cases)))
        return ArrayPatches(rec.patches[keep], rec.labels[keep],
                            np.array([position[c] for c in rec.cases[keep]], np.int64))

    def index(self, split: str, cases: Sequence[str]) -> dict[str, np.ndarray]:
        """Per candidate of these cases of a candidate split: label, case, candidate, info."""
        self._check(cases, split)
        if split not in self._index:
            self._index[split] = self.dataset().index(split)
        full = self._index[split]
        rows = np.flatnonzero(np.isin(full["case"], list(cases)))
        return {"row": rows, **{k: v[rows] for k, v in full.items()}}

    def candidates(self, split: str, cases: Sequence[str]) -> StoredCandidates:
        """The stored candidates of these cases, patches read on demand (the preset's subset)."""
        augs = {"validation": self.settings.validation_augmentations,
                "test": self.settings.score_augmentations}[split]
        index = self.index(split, cases)
        return self.scored(self.dataset().candidates(split, index["row"], index["label"], augs),
                           split)

    def scored(self, source: CandidateSource, split: str) -> CandidateSource:
        """What the network scores of these candidates (``split``: ``validation`` or ``test``;
        new cases score as ``test``): the stored patches themselves, unless an application
        represents a candidate otherwise (``frames``: random crops of the stored frame)."""
        return source

    def validation_candidates(self, cases: Sequence[str]) -> StoredCandidates:
        return self.candidates("validation", cases)

    # ------------------------------------------------------------------ test and predict
    def test(self, scorer: Any, outdir: Path) -> TestResult:
        """Every test candidate scored by the mean over its patches, then the paper's metric."""
        cases = self.cases("test")
        probabilities = scorer.score(self.candidates("test", cases))
        outdir.mkdir(parents=True, exist_ok=True)
        return self.test_result(self.index("test", cases), probabilities, outdir)

    def predict(self, scorer: Any, outdir: Path) -> list[Path]:
        """Apply a trained network to every case of the source (no reference needed): per case
        ``<case>.csv`` and ``<case>.json`` (one row per candidate: its columns and score) and
        ``<case>.png``. Returns the CSV paths."""
        producer, written = self.producer(labelled=False), []
        outdir.mkdir(parents=True, exist_ok=True)
        augs = self.settings.score_augmentations
        cases = self.all_cases()
        for i, case in enumerate(cases):
            table = producer.table(case)
            if len(table):
                patches = producer.patches(case, np.arange(len(table)))
                stored = ArrayCandidates(patches if augs is None else patches[:, list(augs)],
                                         np.zeros(len(table), np.int32))
                scores = scorer.score(self.scored(stored, "test"))[:, 1]
            else:
                scores = np.zeros(0)
            columns = {"candidate": np.arange(len(table)), **self.describe(table),
                       "score": scores}
            written.append(_write_case(outdir, case, columns))
            self.plot_case(case, table, scores, outdir / f"{_safe(case)}.png")
            if self.log:
                self.log(f"predict: {case} ({i + 1}/{len(cases)}): {len(table)} candidates, "
                         f"{int(np.sum(scores >= 0.5))} scored >= 0.5")
        return written


def _safe(case: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in case)


def _write_case(outdir: Path, case: str, columns: Mapping[str, np.ndarray]) -> Path:
    """``<case>.csv`` and ``<case>.json`` with one row per candidate."""
    names = list(columns)
    rows = [dict(zip(names, values, strict=True))
            for values in zip(*(np.asarray(columns[n]).tolist() for n in names), strict=True)]
    path = outdir / f"{_safe(case)}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    (outdir / f"{_safe(case)}.json").write_text(json.dumps({"case": case, "candidates": rows},
                                                           indent=1))
    return path
