"""Candidate patches of any application, cut once and cached as a TFDS array_record data set.

Why: cutting patches means loading volumes or frames and finding candidates, which costs far more
than reading the patches back. So an application describes what it would generate (a
``DatasetSpec``, hashed into the cache key) and how (a ``PatchProducer``); ``build_or_load``
generates the data set once and every later run with the same parameters reads it.

On disk: ``$FTJAX_CACHE/datasets/<app>/<key>/`` holds ``meta.json`` (the spec, per-case facts,
counts, timings) and a TFDS ``GeneratorBasedBuilder`` (``ftjax_patches``) in ``array_record``
format, one builder config per split, read back without TensorFlow
through ``builder.as_data_source(split)`` (random access). Splits:

  ``train``: one record per patch, a stratified sample of (candidate, augmentation) pairs of the
     training cases: ``patch`` uint8 [h, w, c], ``label``, ``case``, ``candidate`` (index within
     the case), ``augmentation`` (index among the K).
  ``validation`` and ``test``: one record per candidate of the validation (test) cases, all K
     augmented patches: ``patches`` uint8 [K, h, w, c], ``label``, ``case``, ``candidate`` and the
     application's own numeric ``info_fields`` (position, size, ...), which its metric reads back.

A split without records (no candidates at all) is not written (TFDS refuses empty splits) and
reads back empty. Generation goes into a temporary sibling directory that is renamed into place
only when complete, so a failure (a corrupt input file, an interrupt) leaves no data set behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorflow_datasets as tfds

from ftjax.cache import cache_dir, process_alive

FORMAT_VERSION = 3  # 2: a validation split of its own; 3: patches stored as raw bytes
SPLITS = ("train", "validation", "test")
META = "meta.json"
_BUILDER = "ftjax_patches"
_VERSION = "1.0.0"
_READ_CHUNK = 256  # records decoded per data-source call when scanning a split
# Patches as one raw byte string per record: TFDS's default stores each uint8 as a varint of an
# int64 list, which read a training split at 18,600-19,400 patches/s, below the 20,000 an
# accelerator needs; as bytes 22,300-25,500 (pe, 37,206 patches, 2-core EPYC). What remains is
# TFDS's per-record decoding in Python (about 70 us a record, five features).
_RAW = tfds.features.Encoding.BYTES

Log = Callable[[str], None]


# A record's own fields and the row an index adds: an application's info fields take others.
RESERVED_FIELDS = ("row", "label", "case", "candidate", "augmentation", "patch", "patches")


class DatasetError(ValueError):
    """A data set that cannot be built or read as asked (the message says which and why)."""


@dataclasses.dataclass(frozen=True, eq=False)
class CaseTable:
    """The candidates of one case, before any patch is cut: what the sampler and the metric need.

    ``labels`` [n] class of each candidate (0 = negative); ``info`` name -> [n, ...] numeric
    per-candidate fields stored with the test records; ``meta`` JSON facts about the case (e.g.
    its number of lesions, so that a case without candidates still counts in the metric).
    """

    labels: np.ndarray
    info: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
            raise ValueError(f"CaseTable: labels must be a 1-D integer array, got {labels.dtype} "
                             f"{labels.shape}")
        for name, values in self.info.items():
            if len(values) != len(labels):
                raise ValueError(f"CaseTable: info field {name!r} has {len(values)} rows for "
                                 f"{len(labels)} candidates")
        object.__setattr__(self, "labels", labels.astype(np.int32))

    def __len__(self) -> int:
        return len(self.labels)


class PatchProducer(Protocol):
    """What an application supplies: candidates per case, then their patches on request."""

    def table(self, case: str) -> CaseTable:
        """Find the candidates of ``case`` (called once per case, before any ``patches``)."""
        ...

    def patches(self, case: str, candidates: np.ndarray) -> np.ndarray:
        """uint8 [len(candidates), K, h, w, c]: all K augmented patches of those candidates."""
        ...


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything the stored records depend on; its hash is the cache key.

    ``params``: the application's generation parameters (JSON-serialisable: data source and its
    fingerprint, seeds, candidate and patch settings). ``info_fields``: name -> (shape, numpy
    dtype name) of the per-candidate fields of ``CaseTable.info``. ``max_train_patches``: size of
    the stratified training sample (classes as equal as the candidates allow).
    ``train_augmentations``: the augmentation indices training patches are drawn from (None: all).
    ``candidate_augmentations``: the patches stored per validation and test candidate (None: all
    K), when only a subset is ever scored (a smoke preset): the disk holds what is used.
    ``train_cases`` are the cases training patches are sampled from (the validation cases are
    split off before, so no validation case is ever trained on).
    """

    app: str
    params: Mapping[str, Any]
    train_cases: tuple[str, ...]
    validation_cases: tuple[str, ...]
    test_cases: tuple[str, ...]
    patch_shape: tuple[int, int, int]
    patches_per_candidate: int
    info_fields: Mapping[str, tuple[tuple[int, ...], str]]
    max_train_patches: int
    train_augmentations: tuple[int, ...] | None = None
    candidate_augmentations: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        every = self.train_cases + self.validation_cases + self.test_cases
        if len(set(every)) != len(every):
            raise ValueError("case ids must be unique, and no case may be in two splits")
        taken = sorted(set(self.info_fields) & set(RESERVED_FIELDS))
        if taken:
            raise ValueError(f"info fields {taken} would shadow the record fields "
                             f"{RESERVED_FIELDS}; rename them")
        if self.max_train_patches < 1 or self.patches_per_candidate < 1:
            raise ValueError("max_train_patches and patches_per_candidate must be >= 1")
        for name in ("train_augmentations", "candidate_augmentations"):
            augs = getattr(self, name)
            if augs is not None and (not augs or min(augs) < 0 or len(set(augs)) != len(augs)
                                     or max(augs) >= self.patches_per_candidate):
                raise ValueError(f"{name} {augs} must index the {self.patches_per_candidate} "
                                 "patches of a candidate, each once")

    @property
    def stored_augmentations(self) -> tuple[int, ...]:
        """Which of a candidate's K patches its validation / test record holds, in order."""
        augs = self.candidate_augmentations
        return tuple(range(self.patches_per_candidate)) if augs is None else tuple(augs)

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        if fields["candidate_augmentations"] is None:  # keys of data sets cached before it
            del fields["candidate_augmentations"]
        return {"format": FORMAT_VERSION, **fields}

    def key(self) -> str:
        """Hash of the spec: equal parameters give the same cached data set."""
        text = json.dumps(self.to_json(), sort_keys=True, default=_jsonable)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cases(spec: DatasetSpec, split: str) -> tuple[str, ...]:
    return {"train": spec.train_cases, "validation": spec.validation_cases,
            "test": spec.test_cases}[split]


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray | tuple):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def cache_path(spec: DatasetSpec) -> Path:
    """``$FTJAX_CACHE/datasets/<app>/<key>``."""
    return cache_dir() / "datasets" / spec.app / spec.key()


# ------------------------------------------------------------------------------- sampling
def stratified_counts(available: Mapping[int, int], total: int) -> dict[int, int]:
    """Patches to draw per class: equal shares of ``total``; a class with fewer patches gives its
    unused share to the others (so all of a rare class is kept)."""
    counts, remaining = {}, int(total)
    order = sorted(available, key=lambda c: available[c])
    for i, c in enumerate(order):
        counts[c] = min(int(available[c]), remaining // (len(order) - i))
        remaining -= counts[c]
    return counts


def _training_selection(spec: DatasetSpec, tables: Sequence[CaseTable]) -> np.ndarray:
    """Rows (case index, candidate, augmentation, label) of the stratified training sample,
    sorted so that patches are cut case by case."""
    augs = np.asarray(spec.train_augmentations if spec.train_augmentations is not None
                      else range(spec.patches_per_candidate), dtype=np.int64)
    pairs = [np.stack(np.broadcast_arrays(i, np.arange(len(t))[:, None], augs[None, :],
                                          t.labels[:, None]), -1).reshape(-1, 4)
             for i, t in enumerate(tables)]
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 4), np.int64)
    rng = np.random.default_rng([spec.seed, 0x5A3])
    classes, sizes = np.unique(pairs[:, 3], return_counts=True)
    counts = stratified_counts(dict(zip(classes.tolist(), sizes.tolist(), strict=True)),
                               spec.max_train_patches)
    chosen = [rng.choice(np.flatnonzero(pairs[:, 3] == c), size=n, replace=False)
              for c, n in counts.items()]
    rows = pairs[np.sort(np.concatenate(chosen))] if chosen else pairs
    return rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]


# ------------------------------------------------------------------------------- generation
class _Progress:
    """Steps done / total with the elapsed time and an ETA, printed at most every few seconds."""

    def __init__(self, total: int, log: Log | None, what: str, every_s: float = 3.0):
        self.total, self.log, self.what, self.every_s = total, log, what, every_s
        self.done, self.t0, self.last = 0, time.perf_counter(), -np.inf

    def step(self, note: str) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.log is None or (now - self.last < self.every_s and self.done < self.total):
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        self.log(f"{self.what}: {self.done}/{self.total} steps ({note}), {elapsed:.0f} s elapsed, "
                 f"ETA {eta:.0f} s")


class _PatchRecords(tfds.core.GeneratorBasedBuilder):
    """The TFDS builder; one config per split, as their records differ (a patch vs K patches
    with the application's info fields)."""

    name = _BUILDER
    VERSION = tfds.core.Version(_VERSION)
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=split) for split in SPLITS]

    def __init__(self, spec: DatasetSpec, plan: _Plan, **kwargs: Any):
        self._spec, self._plan = spec, plan
        super().__init__(file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        s = self._spec
        features: dict[str, Any] = {"label": tfds.features.Scalar(dtype=np.int32),
                                    "case": tfds.features.Text(),
                                    "candidate": tfds.features.Scalar(dtype=np.int32)}
        if self.builder_config.name == "train":
            features["patch"] = tfds.features.Tensor(shape=s.patch_shape, dtype=np.uint8,
                                                     encoding=_RAW)
            features["augmentation"] = tfds.features.Scalar(dtype=np.int32)
        else:
            features["patches"] = tfds.features.Tensor(
                shape=(len(s.stored_augmentations), *s.patch_shape), dtype=np.uint8,
                encoding=_RAW)
            features.update({name: tfds.features.Tensor(shape=tuple(shape), dtype=np.dtype(dt))
                             for name, (shape, dt) in s.info_fields.items()})
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                     disable_shuffling=True,
                                     description=f"ftjax {s.app} patches (key {s.key()})")

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator]:
        split = self.builder_config.name
        return {split: self._generate_examples(split)}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
        return self._plan.examples(split)


@dataclasses.dataclass
class _Plan:
    """What goes into each split, and the producer that cuts it."""

    spec: DatasetSpec
    producer: PatchProducer
    tables: dict[str, CaseTable]
    selection: np.ndarray  # training rows (case index, candidate, augmentation, label)
    progress: _Progress | None = None
    extraction_seconds: float = 0.0
    extracted_candidates: int = 0

    def count(self, split: str) -> int:
        if split == "train":
            return len(self.selection)
        return sum(len(self.tables[c]) for c in _cases(self.spec, split))

    def cases_to_cut(self) -> int:
        train = len(np.unique(self.selection[:, 0]))
        return train + sum(1 for split in SPLITS[1:] for c in _cases(self.spec, split)
                           if len(self.tables[c]))

    def _cut(self, case: str, candidates: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        patches = np.asarray(self.producer.patches(case, candidates))
        self.extraction_seconds += time.perf_counter() - t
        self.extracted_candidates += len(candidates)
        want = (len(candidates), self.spec.patches_per_candidate, *self.spec.patch_shape)
        if patches.dtype != np.uint8 or patches.shape != want:
            raise DatasetError(f"{self.spec.app} producer gave patches {patches.dtype} "
                             f"{patches.shape} for case {case!r}; expected uint8 {want}")
        if self.progress:
            self.progress.step(case)
        return patches

    def examples(self, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
        key = 0
        if split == "train":
            cases = self.spec.train_cases
            for i in np.unique(self.selection[:, 0]):
                rows = self.selection[self.selection[:, 0] == i]
                cands, inverse = np.unique(rows[:, 1], return_inverse=True)
                patches = self._cut(cases[i], cands)
                for (_, cand, aug, label), j in zip(rows, inverse, strict=True):
                    yield key, {"patch": patches[j, aug], "label": int(label),
                                "case": cases[i], "candidate": int(cand),
                                "augmentation": int(aug)}
                    key += 1
            return
        for case in _cases(self.spec, split):
            table = self.tables[case]
            if not len(table):
                continue
            stored = list(self.spec.stored_augmentations)
            patches = self._cut(case, np.arange(len(table)))[:, stored]
            for j in range(len(table)):
                info = {n: np.asarray(v[j], dtype=self.spec.info_fields[n][1])
                        for n, v in table.info.items()}
                yield key, {"patches": patches[j], "label": int(table.labels[j]), "case": case,
                            "candidate": j, **info}
                key += 1


def _generate(spec: DatasetSpec, producer: PatchProducer, out: Path, log: Log | None) -> None:
    """Find candidates in every case, sample the training patches, write the TFDS splits and
    finally meta.json (its presence marks a complete data set)."""
    t0 = time.perf_counter()
    cases = spec.train_cases + spec.validation_cases + spec.test_cases
    first = _Progress(len(cases), log, f"{spec.app} data set: candidates")
    tables = {}
    for case in cases:
        tables[case] = producer.table(case)
        missing = set(spec.info_fields) ^ set(tables[case].info)
        if missing:
            raise DatasetError(f"{spec.app} producer: case {case!r} info fields differ from the "
                             f"spec by {sorted(missing)}")
        first.step(case)
    t_tables = time.perf_counter() - t0
    selection = _training_selection(spec, [tables[c] for c in spec.train_cases])
    plan = _Plan(spec, producer, tables, selection)
    plan.progress = _Progress(plan.cases_to_cut(), log, f"{spec.app} data set: patches")
    out.mkdir(parents=True)
    for split in SPLITS:
        if plan.count(split):
            _PatchRecords(spec, plan, config=split, data_dir=str(out)).download_and_prepare()
    counts = np.unique(selection[:, 3], return_counts=True)
    meta = {
        "spec": spec.to_json(), "key": spec.key(),
        "cases": {c: dict(tables[c].meta, candidates=len(tables[c])) for c in cases},
        "records": {split: plan.count(split) for split in SPLITS},
        "train_patches_per_class": dict(zip(map(str, counts[0]), counts[1].tolist(),
                                            strict=True)),
        "timings": {"candidates_seconds": round(t_tables, 3),
                    "extraction_seconds": round(plan.extraction_seconds, 3),
                    "extracted_candidates": plan.extracted_candidates,
                    "total_seconds": round(time.perf_counter() - t0, 3)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / META).write_text(json.dumps(meta, indent=2, default=_jsonable))


def _remove_stale(parent: Path) -> None:
    """Delete temporary directories of generations whose process is gone (a killed run; the
    pid in the name is checked on this host, so keep one cache per host)."""
    for tmp in parent.glob(".*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def build_or_load(spec: DatasetSpec, producer: PatchProducer, log: Log | None = print
                  ) -> PatchDataset:
    """The data set of ``spec``: read from the cache, or generated (atomically) and cached."""
    path = cache_path(spec)
    if (path / META).is_file():
        if log:
            log(f"{spec.app} data set: using cached {path}")
        return PatchDataset(path)
    if path.exists():  # generation only ever renames a complete directory into place
        raise DatasetError(f"{path} exists but has no {META}: not a data set written by "
                              "ftjax (copied in part?); delete it to regenerate")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path.parent)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if log:
        log(f"{spec.app} data set: generating {len(spec.train_cases)} training, "
            f"{len(spec.validation_cases)} validation and {len(spec.test_cases)} test cases "
            f"into {path}")
    try:
        tfds.display_progress_bar(False)  # our own progress lines instead of tqdm bars
        _generate(spec, producer, tmp, log)
        try:
            tmp.rename(path)
        except OSError:
            if not (path / META).is_file():  # not a concurrent twin that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PatchDataset(path)


# ------------------------------------------------------------------------------- reading
@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Any failure to read a data set's files (a truncated copy, a full disk, flipped bytes, a
    hand-edited JSON: array_record, protobuf, TFDS and numpy each raise their own) as one
    DatasetError naming the data set."""
    try:
        yield
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 (whatever the libraries raise, the data set is unreadable)
        raise DatasetError(f"{path}: damaged data set ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:200]}); delete it to regenerate") from e


def _reading(method: Callable) -> Callable:
    """A method of an object with a ``path`` that reads the data set at that path."""
    @functools.wraps(method)
    def read(self, *args: Any, **kwargs: Any) -> Any:
        with _readable(self.path):
            return method(self, *args, **kwargs)
    return read


@dataclasses.dataclass(frozen=True)
class TrainingRecords:
    """The train split in memory (patches are small; random access must be fast)."""

    patches: np.ndarray  # uint8 [N, h, w, c]
    labels: np.ndarray  # int32 [N]
    cases: np.ndarray  # str [N]
    candidates: np.ndarray  # int32 [N]
    augmentations: np.ndarray  # int32 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class StoredCandidates:
    """A CandidateSource over the validation or test split: patches are read on demand.

    ``rows`` are the records of these candidates, ``labels`` their classes; ``augmentations``
    optionally keeps a subset of each candidate's K patches (fewer patches to score).
    """

    source: Any
    rows: np.ndarray
    labels: np.ndarray
    patch_shape: tuple[int, ...]
    augmentations: np.ndarray | None = None
    path: Path = Path()  # the data set, named when its records are damaged

    def __len__(self) -> int:
        return len(self.rows)

    @_reading
    def patches(self, index: np.ndarray) -> np.ndarray:
        rows = self.rows[np.asarray(index, dtype=np.int64)]
        if not len(rows):
            k = self.patch_shape[0] if self.augmentations is None else len(self.augmentations)
            return np.zeros((0, k, *self.patch_shape[1:]), np.uint8)
        out = np.stack([r["patches"] for r in self.source.__getitems__(rows.tolist())])
        return out if self.augmentations is None else out[:, self.augmentations]


class PatchDataset:
    """A generated data set: ``meta``, the train split in memory, candidate splits on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta = self.path / META
        if not meta.is_file():
            raise DatasetError(f"{meta}: missing; {self.path} is not a complete data set")
        with _readable(self.path):
            self.meta = json.loads(meta.read_text())
            spec = self.meta["spec"]
            self.patch_shape = tuple(spec["patch_shape"])
            self.patches_per_candidate = int(spec["patches_per_candidate"])
            stored = spec.get("candidate_augmentations")
            self.stored_augmentations = tuple(range(self.patches_per_candidate)) \
                if stored is None else tuple(stored)
            self.info_fields = {n: (tuple(s), d) for n, (s, d) in spec["info_fields"].items()}
        self._builders: dict[str, Any] = {}

    def _source(self, split: str) -> Any:
        if split not in self._builders:
            self._builders[split] = tfds.builder_from_directory(
                self.path / _BUILDER / split / _VERSION)
        return self._builders[split].as_data_source(split)

    def _scan(self, split: str, keys: Sequence[str]) -> Iterator[dict[str, Any]]:
        source = self._source(split)
        for lo in range(0, len(source), _READ_CHUNK):
            for record in source.__getitems__(list(range(lo, min(len(source), lo + _READ_CHUNK)))):
                yield {k: record[k] for k in keys}

    @_reading
    def training(self) -> TrainingRecords:
        """Every training patch, read into memory once."""
        keys = ("patch", "label", "case", "candidate", "augmentation")
        rows = list(self._scan("train", keys)) if self.meta["records"]["train"] else []
        if not rows:
            empty = np.zeros(0, np.int32)
            return TrainingRecords(np.zeros((0, *self.patch_shape), np.uint8), empty,
                                   np.zeros(0, str), empty, empty)
        return TrainingRecords(
            np.stack([r["patch"] for r in rows]),
            np.array([r["label"] for r in rows], np.int32),
            np.array([r["case"].decode() for r in rows]),
            np.array([r["candidate"] for r in rows], np.int32),
            np.array([r["augmentation"] for r in rows], np.int32))

    @_reading
    def index(self, split: str) -> dict[str, np.ndarray]:
        """Per record of the ``validation`` or ``test`` split: label, case, candidate and the
        info fields (no patches)."""
        keys = ("label", "case", "candidate", *self.info_fields)
        rows = list(self._scan(split, keys)) if self.meta["records"].get(split) else []
        index = {"label": np.array([r["label"] for r in rows], np.int32),
                 "case": np.array([r["case"].decode() for r in rows], dtype=str),
                 "candidate": np.array([r["candidate"] for r in rows], np.int32)}
        for name, (shape, dtype) in self.info_fields.items():
            index[name] = np.array([r[name] for r in rows], dtype).reshape(len(rows), *shape)
        return index

    @_reading
    def candidates(self, split: str, rows: np.ndarray, labels: np.ndarray,
                   augmentations: Sequence[int] | None = None) -> StoredCandidates:
        """Lazy access to the records ``rows`` (indices into ``index(split)``) of a candidate
        split, with their ``labels``; ``augmentations`` index a candidate's K patches (None:
        every stored one) and must be among those stored."""
        source = self._source(split) if self.meta["records"].get(split) else None
        stored = self.stored_augmentations
        augs = None
        if augmentations is not None:
            missing = sorted(set(augmentations) - set(stored))
            if missing:
                raise DatasetError(f"{self.path}: patches {missing[:8]} of each candidate are "
                                   f"not stored (it holds {len(stored)} of "
                                   f"{self.patches_per_candidate})")
            if tuple(augmentations) != stored:
                augs = np.array([stored.index(a) for a in augmentations], np.int64)
        return StoredCandidates(source, np.asarray(rows, np.int64), np.asarray(labels),
                                (len(stored), *self.patch_shape), augs, self.path)
