"""A run's test predictions: the per-item records its headline metric is computed from.

Written next to ``results.json`` so that the metric can be recomputed, and two runs compared on
the same items (paired bootstrap, DeLong), without rescoring. Two files in the workdir:

``predictions.csv``: one row per scored item, with the columns
    ``case``     the case the item belongs to (scan, frame, image)
    ``cluster``  the unit a bootstrap resamples and a split never cuts (patient, video, subject)
    ``item``     the item's id within its case (candidate index, column, ...)
    ``truth``    reference: class (0 negative), or a reference value (a boundary row)
    ``score``    the system's: positive-class probability, or its value (a boundary row)
    ``lesion``   (FROC only) the lesion id the item hits within its case, -1 for none
    plus the application's own columns (position, size, baseline scores, ...).
``predictions.json``: ``format``, ``app``, ``synthetic``, ``metric`` (``kind`` and its parameters),
    ``cases`` (every scored case, also those without items: its ``cluster``, for FROC its number of
    ``lesions``, for boundaries its ``um_per_pixel``), ``columns`` (what each extra column means).

Metric kinds: ``froc`` (sensitivity per lesion at ``at`` false positives per case, bootstrap
interval over clusters), ``roc`` (AUC with DeLong's interval), ``boundary`` (mean absolute
difference of truth and score in micrometres per case, averaged over cases, bootstrap interval).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftjax import metrics
from ftjax.metrics._checks import bootstrap_counts

FORMAT = 1
CSV, JSON = "predictions.csv", "predictions.json"
KINDS = ("froc", "roc", "boundary")
REQUIRED = ("case", "cluster", "item", "truth", "score")
_TEXT = ("case", "cluster", "item")


class PredictionsError(ValueError):
    """A predictions file that is missing, malformed or not comparable (the message says which)."""


@dataclasses.dataclass(frozen=True)
class Headline:
    """The metric a run is judged by, with its 95% interval."""

    name: str
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, eq=False)
class Predictions:
    """Per-item records (``columns``: name -> [n] array), per-case facts and the metric spec."""

    app: str
    synthetic: bool
    metric: Mapping[str, Any]
    columns: Mapping[str, np.ndarray]
    cases: Mapping[str, Mapping[str, Any]]
    descriptions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED if c not in self.columns]
        if missing:
            raise PredictionsError(f"predictions lack the columns {missing}")
        kind = self.metric.get("kind")
        if kind not in KINDS:
            raise PredictionsError(f"metric kind {kind!r}; expected one of {KINDS}")
        n = {name: len(v) for name, v in self.columns.items()}
        if len(set(n.values())) > 1:
            raise PredictionsError(f"columns of different lengths: {n}")
        unknown = set(np.unique(self.columns["case"]).tolist()) - set(self.cases)
        if unknown:
            raise PredictionsError(f"items of cases missing from the case table: "
                                   f"{sorted(unknown)[:5]}")
        if kind == "froc" and "lesion" not in self.columns:
            raise PredictionsError("FROC predictions need a 'lesion' column")

    def __len__(self) -> int:
        return len(self.columns["case"])

    def case_rows(self, case: str) -> np.ndarray:
        return np.flatnonzero(self.columns["case"] == case)

    def with_score(self, column: str) -> Predictions:
        """The same items scored by another column (e.g. a baseline's score)."""
        return dataclasses.replace(self, columns={**self.columns, "score": self.columns[column]})

    # ------------------------------------------------------------------------- files
    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """``predictions.csv`` and ``predictions.json`` in ``directory``, each atomically."""
        directory = Path(directory)
        names = list(REQUIRED) + [c for c in self.columns if c not in REQUIRED]
        rows = zip(*(self.columns[c].tolist() for c in names), strict=True)
        tmp = directory / (CSV + ".part")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            writer.writerows(rows)
        tmp.replace(directory / CSV)
        meta = {"format": FORMAT, "app": self.app, "synthetic": self.synthetic,
                "metric": dict(self.metric), "cases": {c: dict(v) for c, v in self.cases.items()},
                "columns": dict(self.descriptions)}
        tmp = directory / (JSON + ".part")
        tmp.write_text(json.dumps(meta, indent=1, default=_plain))
        tmp.replace(directory / JSON)
        return directory / CSV, directory / JSON

    @classmethod
    def read(cls, directory: str | Path) -> Predictions:
        """The predictions of a run's workdir (or any folder holding the two files)."""
        directory = Path(directory)
        for name in (CSV, JSON):
            if not (directory / name).is_file():
                raise PredictionsError(f"{directory / name}: no such file (a run writes it when "
                                       "its test finishes)")
        try:
            meta = json.loads((directory / JSON).read_text())
            with open(directory / CSV, newline="") as f:
                reader = csv.reader(f)
                header = next(reader)
                body = list(reader)
        except (OSError, ValueError, StopIteration) as e:
            raise PredictionsError(f"{directory}: unreadable predictions ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise PredictionsError(f"{directory / JSON}: not an ftjax predictions file of "
                                   f"format {FORMAT}")
        if any(len(row) != len(header) for row in body):
            raise PredictionsError(f"{directory / CSV}: rows of different lengths")
        table = list(zip(*body, strict=True)) if body else [()] * len(header)
        columns = {}
        for name, values in zip(header, table, strict=True):
            try:
                columns[name] = np.array(values, dtype=str if name in _TEXT else np.float64)
            except ValueError as e:
                raise PredictionsError(f"{directory / CSV}: column {name!r}: {e}") from e
        return cls(app=meta["app"], synthetic=bool(meta["synthetic"]), metric=meta["metric"],
                   columns=columns, cases=meta["cases"], descriptions=meta.get("columns", {}))


def concatenate(parts: Sequence[Predictions]) -> Predictions:
    """Predictions of disjoint test sets as one (the K folds of a cross-validation: every case
    tested once, the metric computed over all of them)."""
    if not parts:
        raise PredictionsError("no predictions to concatenate")
    first = parts[0]
    cases: dict[str, Mapping[str, Any]] = {}
    for part in parts:
        if (part.app, part.metric.get("kind"), part.metric.get("name")) != \
                (first.app, first.metric.get("kind"), first.metric.get("name")):
            raise PredictionsError(f"cannot pool {part.app}/{part.metric.get('name')} with "
                                   f"{first.app}/{first.metric.get('name')}")
        if set(part.columns) != set(first.columns):
            raise PredictionsError(f"the parts have different columns: {sorted(part.columns)} "
                                   f"vs {sorted(first.columns)}")
        twice = sorted(set(part.cases) & set(cases))
        if twice:
            raise PredictionsError(f"case {twice[0]!r} is in two parts (folds must be disjoint)")
        cases.update(part.cases)
    columns = {k: np.concatenate([p.columns[k] for p in parts]) for k in first.columns}
    return dataclasses.replace(first, synthetic=any(p.synthetic for p in parts),
                               columns=columns, cases=cases)


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# ----------------------------------------------------------------------------- metrics
def froc_hits(pred: Predictions) -> list[metrics.CaseHits]:
    """Per case (in ``pred.cases`` order) its FROC outcome: several items on one lesion count
    once at their best score and are not false positives; items on no lesion are."""
    out = []
    for case, facts in pred.cases.items():
        rows = pred.case_rows(case)
        lesion = pred.columns["lesion"][rows].astype(np.int64)
        out.append(metrics.CaseHits.from_assignments(pred.columns["score"][rows],
                                                     np.where(lesion >= 0, lesion, -1),
                                                     int(facts["lesions"])))
    return out


def _clusters(pred: Predictions) -> list[str]:
    return [str(facts["cluster"]) for facts in pred.cases.values()]


def case_errors_um(pred: Predictions) -> np.ndarray:
    """Boundary kind: per case the mean |truth - score| in micrometres (NaN: no items)."""
    out = []
    for case, facts in pred.cases.items():
        rows = pred.case_rows(case)
        diff = np.abs(pred.columns["truth"][rows] - pred.columns["score"][rows])
        out.append(diff.mean() * float(facts["um_per_pixel"]) if rows.size else np.nan)
    return np.asarray(out)


def headline(pred: Predictions) -> Headline:
    """The headline metric from the records alone (what ``results.json`` reports)."""
    m = pred.metric
    if m["kind"] == "froc":
        if not sum(int(facts["lesions"]) for facts in pred.cases.values()):
            return Headline(m["name"], math.nan, math.nan, math.nan)  # no lesion: undefined
        points = [float(p) for p in m["operating_points"]]
        if not metrics.estimable([float(m["at"])], len(pred.cases))[0]:
            return Headline(f"{m['name']} (not estimable: {len(pred.cases)} {m['per']}s hold "
                            "less than one false positive at that rate)", math.nan, math.nan,
                            math.nan)
        boot = metrics.froc_bootstrap(froc_hits(pred), points, clusters=_clusters(pred),
                                      n_boot=int(m["n_boot"]), seed=int(m["seed"]))
        i = points.index(float(m["at"]))
        return Headline(m["name"], float(boot.estimate[i]), float(boot.low[i]),
                        float(boot.high[i]))
    if m["kind"] == "roc":
        ci = metrics.delong_interval(pred.columns["truth"] != 0, pred.columns["score"])
        return Headline(m["name"], ci.auc, ci.low, ci.high)
    errors = case_errors_um(pred)
    value, samples = cluster_bootstrap_mean(errors, _clusters(pred), int(m["n_boot"]),
                                             int(m["seed"]))
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return Headline(m["name"], value, float(low), float(high))


def cluster_bootstrap_mean(values: np.ndarray, clusters: list[str], n_boot: int,
                            seed: int) -> tuple[float, np.ndarray]:
    """Mean of per-case ``values`` (NaN skipped) and its bootstrap over whole clusters."""
    ok = np.isfinite(values)
    if not ok.any():
        raise PredictionsError("no case has a value to average")
    codes = np.unique(np.asarray(clusters)[ok], return_inverse=True)[1]
    v = values[ok]
    counts = np.concatenate(list(bootstrap_counts(int(codes.max()) + 1, n_boot,
                                                  np.random.default_rng(seed), n_boot)))
    weights = counts[:, codes]
    return float(v.mean()), (weights @ v) / weights.sum(1)


# ----------------------------------------------------------------------------- comparisons
def align(a: Predictions, b: Predictions) -> Predictions:
    """``b`` reordered to ``a``'s items; an error unless both scored the same items and cases."""
    if a.metric["kind"] != b.metric["kind"] or a.app != b.app:
        raise PredictionsError(f"not comparable: {a.app}/{a.metric['kind']} vs "
                               f"{b.app}/{b.metric['kind']}")
    if list(a.cases) != list(b.cases) and set(a.cases) != set(b.cases):
        raise PredictionsError("the runs were tested on different cases (another --data_seed "
                               "or data set?)")
    key_a = np.char.add(np.char.add(a.columns["case"], "\x00"), a.columns["item"])
    key_b = np.char.add(np.char.add(b.columns["case"], "\x00"), b.columns["item"])
    if len(key_a) != len(key_b) or set(key_a.tolist()) != set(key_b.tolist()):
        raise PredictionsError(f"the runs scored different items ({len(key_a)} vs {len(key_b)})")
    order = np.argsort(key_b)[np.searchsorted(np.sort(key_b), key_a)]
    cols = {k: v[order] for k, v in b.columns.items()}
    if not np.array_equal(cols["truth"], a.columns["truth"]):
        raise PredictionsError("the runs disagree on the reference of some items")
    return dataclasses.replace(b, columns=cols, cases={c: b.cases[c] for c in a.cases})


def compare(a: Predictions, b: Predictions, n_boot: int | None = None,
            seed: int | None = None) -> dict[str, Any]:
    """Paired comparison of two runs on the same items, from their predictions alone.

    FROC: paired cluster bootstrap of the sensitivity difference at every operating point.
    ROC: DeLong's paired AUC test and a paired bootstrap (over clusters) at the AUC.
    Boundary: paired cluster bootstrap of the difference of the mean errors.
    """
    b = align(a, b)
    m = a.metric
    n_boot = int(m.get("n_boot", 1000) if n_boot is None else n_boot)
    seed = int(m.get("seed", 0) if seed is None else seed)
    ha, hb = headline(a), headline(b)
    out: dict[str, Any] = {"metric": m["name"], "a": ha.as_dict(), "b": hb.as_dict()}
    if m["kind"] == "froc":
        pair = metrics.compare_froc({"a": froc_hits(a), "b": froc_hits(b)},
                                    [float(p) for p in m["operating_points"]],
                                    clusters=_clusters(a), n_boot=n_boot, seed=seed)[("a", "b")]
        out |= {"operating_points": [float(p) for p in m["operating_points"]],
                "diff": pair.diff.tolist(), "diff_low": pair.diff_low.tolist(),
                "diff_high": pair.diff_high.tolist(), "p_value": pair.p_value.tolist()}
    elif m["kind"] == "roc":
        clusters = [str(a.cases[c]["cluster"]) for c in a.columns["case"]]
        res = metrics.compare_roc(a.columns["truth"] != 0,
                                  {"a": a.columns["score"], "b": b.columns["score"]},
                                  clusters=clusters, n_boot=n_boot, seed=seed)[("a", "b")]
        out |= {"diff": res.delong.difference, "delong_p_value": res.delong.p_value,
                "bootstrap_auc_p_value": res.bootstrap.summary_p_value}
    else:
        ea, eb = case_errors_um(a), case_errors_um(b)
        diff, samples = cluster_bootstrap_mean(ea - eb, _clusters(a), n_boot, seed)
        tail = min(np.sum(samples <= 0), np.sum(samples >= 0))
        out |= {"diff": diff, "p_value": min(1.0, 2 * (1 + tail) / (n_boot + 1))}
    return out
