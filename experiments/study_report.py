"""The study's figures, tables and report, every number computed from the runs' own files
(``results.json``, the predictions, ``validation.npz``, ``metrics.jsonl``), never typed.

Per training seed, all of that seed's runs (every depth, every training fraction) are scored on
one set of bootstrap resamples of the shared test clusters (patients, videos, subjects), so that
any difference between runs, and any difference of differences, is paired on the same items:
the pairwise tables (Holm-corrected per operating point), the reduced-data test of conclusion 2,
and the top-down walk of conclusion 4 all read those paired samples. ``experiments.layerwise``
calls :func:`write`; nothing here knows an application's name: the metric kind comes from the
predictions, and what the paper expects from the app's study facts.
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
from scipy import stats

from ftjax import autodepth, metrics
from ftjax.metrics._checks import bootstrap_counts, percentile_interval
from ftjax.predictions import (
    Predictions,
    PredictionsError,
    align,
    case_errors_um,
    concatenate,
    froc_hits,
)
from ftjax.trainer import read_validation

SCRATCH = "scratch"
DEPTH_GROUPS = {"fc8": "shallow", "fc7": "shallow", "fc6": "shallow", "conv5": "mid",
                "conv4": "mid", "conv3": "mid", "conv2": "deep", "conv1": "deep"}
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Finished:
    """One finished configuration of the sweep: its run, or its K runs under ``--folds=K``
    (pooled: every case tested once)."""

    config: str
    fraction: float
    seed: int
    workdirs: tuple[Path, ...]
    results: tuple[Mapping[str, Any], ...]

    @property
    def best_val_auc(self) -> float:
        values = [r.get("best_val_auc") for r in self.results]
        return float(np.mean([math.nan if v is None else v for v in values]))

    @property
    def seconds(self) -> float:
        return float(sum(r.get("timings", {}).get("total_seconds", math.nan)
                         for r in self.results))

    @property
    def reached(self) -> float:
        return float(np.mean([r["data"].get("train_fraction_reached", self.fraction)
                              for r in self.results]))

    def predictions(self) -> Predictions:
        return concatenate([Predictions.read(w) for w in self.workdirs])

    def validation(self) -> autodepth.Validation:
        parts = [read_validation(w) for w in self.workdirs]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def epochs(self) -> np.ndarray:
        """(step, validation AUC) of every epoch in the (first) run's ``metrics.jsonl``."""
        rows = []
        path = self.workdirs[0] / "metrics.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("kind") == "epoch":
                    rows.append((float(rec["step"]), float(rec["val_auc"])))
        return np.asarray(sorted(set(rows)), dtype=float).reshape(-1, 2)


@dataclasses.dataclass(frozen=True, eq=False)
class Points:
    """One run's operating points (``names``), estimated on the full test set, with percentile
    intervals and the samples of its seed's shared resamples ([n_boot, points])."""

    names: tuple[str, ...]
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    samples: np.ndarray
    headline: int  # index of the headline point
    band: metrics.CurveBootstrap | None = None  # the curve's pointwise band (FROC, ROC)


# ----------------------------------------------------------------------------- shared bootstrap
def _froc_points(preds: Mapping[str, Predictions]) -> dict[str, Points]:
    first = next(iter(preds.values()))
    m = first.metric
    at = [float(x) for x in m["operating_points"]]
    ok = metrics.estimable(at, len(first.cases))
    boots = metrics.froc_bootstraps({k: froc_hits(p) for k, p in preds.items()}, at,
                                    clusters=[str(c["cluster"]) for c in first.cases.values()],
                                    n_boot=int(m.get("n_boot", 1000)), seed=int(m.get("seed", 0)))
    names = tuple(f"sensitivity at {x:g} FP/{m.get('per', 'case')}" for x in at)
    mask = np.where(ok, 1.0, np.nan)
    return {k: Points(names, b.estimate * mask, b.low * mask, b.high * mask, b.samples * mask,
                      at.index(float(m["at"])), b)
            for k, b in boots.items()}


def _roc_points(preds: Mapping[str, Predictions], fprs: Sequence[float]) -> dict[str, Points]:
    first = next(iter(preds.values()))
    m = first.metric
    clusters = [str(first.cases[c]["cluster"]) for c in first.columns["case"]]
    boots = metrics.roc_bootstraps(first.columns["truth"] != 0,
                                   {k: p.columns["score"] for k, p in preds.items()},
                                   fprs, clusters=clusters, n_boot=int(m.get("n_boot", 1000)),
                                   seed=int(m.get("seed", 0)))
    names = ("AUC", *(f"sensitivity at {x:.0%} FPR" for x in fprs))
    out = {}
    for k, b in boots.items():
        auc = metrics.delong_interval(first.columns["truth"] != 0, preds[k].columns["score"])
        out[k] = Points(names, np.r_[auc.auc, b.estimate], np.r_[auc.low, b.low],
                        np.r_[auc.high, b.high], np.c_[b.summary_samples, b.samples], 0, b)
    return out


def _groups(pred: Predictions) -> list[str]:
    """Boundary kind: per case its group (an interface), from the metric's ``group_by``."""
    m = pred.metric
    if "group_by" not in m:
        return ["all"] * len(pred.cases)
    col = pred.columns[m["group_by"]]
    return [str(m["groups"][str(int(col[pred.case_rows(c)][0]))])
            if pred.case_rows(c).size else "" for c in pred.cases]


def _boundary_points(preds: Mapping[str, Predictions]) -> dict[str, Points]:
    first = next(iter(preds.values()))
    m = first.metric
    codes = np.unique([str(c["cluster"]) for c in first.cases.values()], return_inverse=True)[1]
    n_boot = int(m.get("n_boot", 1000))
    weights = np.concatenate(list(bootstrap_counts(int(codes.max()) + 1, n_boot,
                                                   np.random.default_rng(int(m.get("seed", 0))),
                                                   n_boot)))[:, codes]
    groups = np.array(_groups(first))
    names = (m["name"], *(f"{g} error (um)" for g in dict.fromkeys(groups) if g))
    out = {}
    for k, p in preds.items():
        errors = case_errors_um(p)
        est, samples = [], []
        for name in names:
            sel = np.isfinite(errors) & (groups == name.removesuffix(" error (um)")
                                         if name != names[0] else True)
            v = np.where(sel, errors, 0.0)
            est.append(v.sum() / max(sel.sum(), 1) if sel.any() else np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                samples.append((weights @ v) / (weights @ sel))
        samples_arr = np.stack(samples, axis=1)
        low, high = percentile_interval(samples_arr, 0.95)
        out[k] = Points(names, np.asarray(est), low, high, samples_arr, 0)
    return out


def shared_points(preds: Mapping[str, Predictions],
                  roc_fprs: Sequence[float] = (0.1, 0.15, 0.2)) -> dict[str, Points]:
    """Every run's operating points on one set of resamples (runs tested on the same items)."""
    first = next(iter(preds.values()))
    aligned = {k: align(first, p) for k, p in preds.items()}
    kind = first.metric["kind"]
    if kind == "froc":
        return _froc_points(aligned)
    if kind == "roc":
        return _roc_points(aligned, [float(x) for x in first.metric.get("operating_points",
                                                                        roc_fprs)])
    return _boundary_points(aligned)


def lower_is_better(kind: str) -> bool:
    return kind == "boundary"


# ----------------------------------------------------------------------------- tests
def wald_p(estimate: float, samples: np.ndarray) -> float:
    """Two-sided p-value of "no difference": the estimate over its bootstrap standard error,
    against the normal distribution. Unlike counting resamples beyond zero, it has no floor
    of 2 / (n_boot + 1), which Holm's correction over 36 pairs would push above 0.05."""
    se = float(np.nanstd(samples, ddof=1))
    if se == 0 or not math.isfinite(se):
        return 1.0 if estimate == 0 else 0.0
    return float(2 * stats.norm.sf(abs(estimate) / se))


def paired(a: Points, b: Points, i: int) -> tuple[float, float, float, float]:
    """a - b at point ``i``: the difference, its percentile interval and the p-value of the
    paired bootstrap (:func:`wald_p`)."""
    d = a.samples[:, i] - b.samples[:, i]
    diff = float(a.estimate[i] - b.estimate[i])
    if not math.isfinite(diff) or np.isfinite(d).mean() < 0.5:
        return (math.nan,) * 4
    low, high = percentile_interval(d, 0.95)
    return diff, float(low), float(high), wald_p(diff, d)


def pairwise(points: Mapping[str, Points], order: Sequence[str]) -> list[dict[str, Any]]:
    """Every pair of ``order`` (in order) at every operating point, Holm-corrected within each
    operating point's family of pairs."""
    names = [n for n in order if n in points]
    rows = []
    if len(names) < 2:
        return rows
    labels = next(iter(points.values())).names
    for i, point in enumerate(labels):
        family = []
        for x, a in enumerate(names):
            for b in names[x + 1:]:
                diff, low, high, p = paired(points[a], points[b], i)
                family.append({"point": point, "a": a, "b": b, "a_value": points[a].estimate[i],
                               "b_value": points[b].estimate[i], "diff": diff, "diff_low": low,
                               "diff_high": high, "p": p})
        adjusted = metrics.holm([r["p"] for r in family])
        for row, adj in zip(family, adjusted, strict=True):
            row["p_holm"] = adj
            row["significant"] = bool(adj < ALPHA) if math.isfinite(adj) else None
        rows += family
    return rows


def _better(kind: str, diff: float) -> float:
    """``diff`` signed so that a positive value favours its first term."""
    return -diff if lower_is_better(kind) else diff


# ----------------------------------------------------------------------------- conclusions
@dataclasses.dataclass(frozen=True)
class Verdict:
    number: int
    claim: str
    verdict: str  # supported | consistent | not supported | too few cases | not run
    statement: str


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _test_text(diff: float, low: float, high: float, p: float) -> str:
    return f"difference {_fmt(diff)} [{_fmt(low)}, {_fmt(high)}], paired bootstrap p = {_fmt(p, 3)}"


def _few(points: Mapping[str, Points], i: int, *names: str) -> bool:
    """Too few cases to tell: the resamples rarely define the metric at that point."""
    return any(np.mean(np.isfinite(points[n].samples[:, i])) < 0.5
               or not math.isfinite(points[n].estimate[i]) for n in names)


def conclusion1(kind: str, full: Mapping[str, Points], runs: Mapping[str, Finished]) -> Verdict:
    claim = "A pretrained CNN with adequate fine-tuning was never worse than training from scratch."
    tuned = [c for c in autodepth.ORDER if c in full]
    if SCRATCH not in full or not tuned:
        return Verdict(1, claim, "not run", "needs scratch and at least one fine-tuned depth.")
    chosen = max(tuned, key=lambda c: np.nan_to_num(runs[c].best_val_auc, nan=-1.0))
    h = full[chosen].headline
    if _few(full, h, chosen, SCRATCH):
        return Verdict(1, claim, "too few cases", f"{full[chosen].names[h]} is not estimable "
                       "on this test set.")
    diff, low, high, p = paired(full[chosen], full[SCRATCH], h)
    better = _better(kind, diff)
    text = (f"{chosen} (the fine-tuned depth with the best validation AUC, "
            f"{_fmt(runs[chosen].best_val_auc)}) against scratch, "
            f"{full[chosen].names[h]}: {_fmt(full[chosen].estimate[h])} vs "
            f"{_fmt(full[SCRATCH].estimate[h])}; {_test_text(diff, low, high, p)}.")
    if p < ALPHA and better > 0:
        return Verdict(1, claim, "supported", f"{text} Fine-tuning is significantly better.")
    if p < ALPHA:
        return Verdict(1, claim, "not supported", f"{text} Scratch is significantly better.")
    return Verdict(1, claim, "consistent", f"{text} Fine-tuning is not significantly worse (nor "
                   "shown better; no difference is not proof of equivalence).")


def conclusion2(kind: str, points: Mapping[tuple[str, float], Points],
                facts: Mapping[str, Any]) -> tuple[Verdict, list[dict[str, Any]]]:
    claim = "Fine-tuned CNNs were more robust to smaller training sets."
    tuned = [c for c in facts.get("reduced_configs", ()) if c != SCRATCH]
    rows: list[dict[str, Any]] = []
    if not tuned or (tuned[0], 1.0) not in points or (SCRATCH, 1.0) not in points:
        return Verdict(2, claim, "not run", "needs deep tuning and scratch on all the training "
                       "data and on reduced sets."), rows
    ft, h = tuned[0], points[(tuned[0], 1.0)].headline
    for f in facts.get("reduced_fractions", ()):
        f = float(f)
        if (ft, f) not in points or (SCRATCH, f) not in points:
            continue
        a, b = points[(ft, f)], points[(ft, 1.0)]
        c, d = points[(SCRATCH, f)], points[(SCRATCH, 1.0)]
        drops = (a.samples[:, h] - b.samples[:, h]) - (c.samples[:, h] - d.samples[:, h])
        est = (a.estimate[h] - b.estimate[h]) - (c.estimate[h] - d.estimate[h])
        ok = np.isfinite(drops).mean() >= 0.5 and math.isfinite(est)
        low, high = percentile_interval(drops, 0.95) if ok else (math.nan, math.nan)
        p = wald_p(float(est), drops) if ok else math.nan
        rows.append({"fraction": f, "point": a.names[h], f"{ft}_change": a.estimate[h] -
                     b.estimate[h], "scratch_change": c.estimate[h] - d.estimate[h],
                     "difference": float(est), "low": float(low), "high": float(high), "p": p,
                     "favours": (ft if _better(kind, est) > 0 else SCRATCH) if ok else ""})
    if not rows:
        return Verdict(2, claim, "not run", "no reduced-data runs finished."), rows
    parts = [f"at {r['fraction']:g}: {ft} changed by {_fmt(r[f'{ft}_change'])}, scratch by "
             f"{_fmt(r['scratch_change'])}; "
             + _test_text(r["difference"], r["low"], r["high"], r["p"]) for r in rows]
    text = f"{rows[0]['point']}, change from all the training data, {ft} minus scratch: " \
        + "; ".join(parts) + "."
    tested = [r for r in rows if math.isfinite(r["p"])]
    if not tested:
        return Verdict(2, claim, "too few cases", text), rows
    wins = [r for r in tested if r["p"] < ALPHA and r["favours"] == ft]
    losses = [r for r in tested if r["p"] < ALPHA and r["favours"] == SCRATCH]
    if losses:
        return Verdict(2, claim, "not supported", text + " Scratch held up significantly better "
                       "at " + ", ".join(f"{r['fraction']:g}" for r in losses) + "."), rows
    if wins:
        return Verdict(2, claim, "supported", text + f" {ft} held up significantly better at "
                       + ", ".join(f"{r['fraction']:g}" for r in wins) + "."), rows
    return Verdict(2, claim, "consistent", text + " No significant difference in robustness."), \
        rows


def conclusion3(kind: str, full: Mapping[str, Points], pairs: Sequence[Mapping[str, Any]],
                facts: Mapping[str, Any]) -> Verdict:
    claim = ("Neither shallow nor deep tuning is always best: PE saturates after the fc layers, "
             "frames peak at mid depth, polyp and CIMT want all layers.")
    tuned = [c for c in autodepth.ORDER if c in full]
    if len(tuned) < 2:
        return Verdict(3, claim, "not run", "needs at least two fine-tuned depths.")
    h = full[tuned[0]].headline
    sign = -1 if lower_is_better(kind) else 1
    values = {c: full[c].estimate[h] for c in tuned if math.isfinite(full[c].estimate[h])}
    if not values:
        return Verdict(3, claim, "too few cases", f"{full[tuned[0]].names[h]} is not estimable.")
    best = max(values, key=lambda c: sign * values[c])
    point = full[best].names[h]
    tied = [c for c in tuned if c != best and any(
        r["point"] == point and {r["a"], r["b"]} == {best, c} and r["significant"] is False
        for r in pairs)]
    text = (f"best fine-tuned depth on {point}: {best} ({_fmt(values[best])}, a "
            f"{DEPTH_GROUPS[best]} depth); not significantly different from it after Holm: "
            f"{', '.join(tied) or 'none'}.")
    expected = facts.get("paper_depth")
    if expected is None:
        return Verdict(3, claim, "not run", text + " The paper states no depth for this "
                       "application.")
    near = {DEPTH_GROUPS[c] for c in [best, *tied]}
    text += (f" The paper found {expected} tuning best for this application. Conclusion 3 is "
             "about four applications together; this one contributes its own best depth.")
    if expected in near:
        return Verdict(3, claim, "consistent", text)
    return Verdict(3, claim, "not supported", text + f" Here no {expected} depth is within "
                   "reach of the best.")


def conclusion4(kind: str, full: Mapping[str, Points], runs: Mapping[str, Finished],
                ) -> tuple[Verdict, dict[str, Any]]:
    claim = "Tuning layer by layer from the top down is a practical way to find the right depth."
    tuned = [c for c in autodepth.ORDER if c in full]
    if "fc8" not in full or len(tuned) < 2:
        return Verdict(4, claim, "not run", "needs fc8 and deeper depths."), {}

    def validate(depth: str) -> autodepth.Validation:
        if depth not in runs:
            raise KeyError(depth)
        return runs[depth].validation()

    try:
        chosen, steps = autodepth.walk(validate)
    except (KeyError, FileNotFoundError, ValueError) as e:
        return Verdict(4, claim, "not run", f"the walk needs each depth's validation scores "
                       f"({e})."), {}
    h = full[chosen].headline
    sign = -1 if lower_is_better(kind) else 1
    values = {c: full[c].estimate[h] for c in tuned if math.isfinite(full[c].estimate[h])}
    best = max(values, key=lambda c: sign * values[c]) if values else chosen
    seconds = {c: runs[c].seconds for c in tuned}
    walked = sum(seconds[s.depth] for s in steps)
    sweep = sum(seconds.values())
    path = " -> ".join(f"{s.depth} ({s.auc:.3f})" for s in steps)
    walk = {"chosen": chosen, "best_on_test": best, "path": [dataclasses.asdict(s) for s in steps],
            "walk_seconds": walked, "sweep_seconds": sweep}
    text = (f"the walk on validation AUC (the rule of --tune_from=auto, on this sweep's runs: "
            f"with the same seed they are the runs auto would train) went {path} and chose "
            f"{chosen}, in {_fmt(walked / 60, 3)} of the {_fmt(sweep / 60, 3)} training minutes "
            f"of the {len(tuned)} fine-tuned depths. The best depth on the test set is {best}.")
    if chosen == best:
        return Verdict(4, claim, "supported", text + " The walk found it."), walk
    if _few(full, h, chosen, best):
        return Verdict(4, claim, "too few cases", text), walk
    diff, low, high, p = paired(full[chosen], full[best], h)
    walk |= {"diff": diff, "p": p}
    text += f" {chosen} against {best}: {_test_text(diff, low, high, p)}."
    if p < ALPHA:
        return Verdict(4, claim, "not supported", text + " The walk stopped at a significantly "
                       "worse depth."), walk
    return Verdict(4, claim, "supported", text + " The chosen depth is not significantly worse "
                   "than the best."), walk


# ----------------------------------------------------------------------------- files
def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``rows`` as a CSV file, the columns every row's keys in order of appearance."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row)) or ["empty"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def figures(outdir: Path, kind: str, facts: Mapping[str, Any], full: Mapping[str, Predictions],
            points: Mapping[tuple[str, float], Points], runs: Mapping[str, Finished],
            title: str) -> list[Path]:
    """The paper's figures for one seed: all depths' curves with 95% bands (box plots for
    boundaries), the reduced-data comparison, validation AUC against iterations."""
    from ftjax.metrics import plots  # noqa: PLC0415 (matplotlib only when writing figures)

    out, paths = outdir / "figures", []
    first = next(iter(full.values()))
    fig = dict(facts.get("figure", {}))
    bands = {c: points[(c, 1.0)].band for c in full if (c, 1.0) in points}  # shared resamples
    if kind == "froc":
        hits = {k: froc_hits(align(first, p)) for k, p in full.items()}
        paths.append(plots.plot_froc({k: metrics.froc_from_cases(v) for k, v in hits.items()},
                                     out, bands, log_x=bool(fig.get("log_x")),
                                     x_limits=fig.get("x_limits"),
                                     per=first.metric.get("per", "case"), title=title))
    elif kind == "roc":
        labels = first.columns["truth"] != 0
        scores = {k: align(first, p).columns["score"] for k, p in full.items()}
        paths.append(plots.plot_roc({k: metrics.roc_curve(labels, s) for k, s in scores.items()},
                                    out, bands, title=title))
    else:
        groups = np.array(_groups(first))
        for g in dict.fromkeys(groups):
            errors = {k: case_errors_um(align(first, p))[groups == g] for k, p in full.items()}
            errors = {k: v[np.isfinite(v)] for k, v in errors.items() if np.isfinite(v).any()}
            if errors:
                paths.append(plots.plot_boxplots(errors, out, ylabel=f"{g} error (um)",
                                                 title=f"{title} {g}"))
    reduced = {}
    for config in facts.get("reduced_configs", ()):
        rows = [(run.reached, p.estimate[p.headline],
                 p.low[p.headline], p.high[p.headline])
                for (c, f), p in points.items() if c == config
                for run in [runs.get(f"{c}@{f:g}")] if run is not None]
        if rows:
            reduced[config] = rows
    if reduced:
        name = next(iter(points.values())).names[next(iter(points.values())).headline]
        paths.append(plots.plot_intervals(reduced, out, ylabel=name,
                                          xlabel="share of the training units kept (reached)",
                                          title=f"{title} reduced training sets"))
    curves = {run.config: run.epochs() for key, run in runs.items()
              if run.fraction == 1.0}
    curves = {k: v for k, v in curves.items() if len(v)}
    if curves:
        paths.append(plots.plot_training_curves(curves, out, ylabel="validation AUC",
                                                xlabel="iteration", title=f"{title} convergence"))
    return paths


def write(app: str, outdir: Path, finished: Sequence[Finished], facts: Mapping[str, Any],
          order: Sequence[str]) -> dict[str, Any]:
    """Tables (``tables/*.csv``), figures (``figures/``) and what ``report.md`` says, for every
    seed; returns the report's sections (a dict of Markdown lines and file paths)."""
    seeds = sorted({r.seed for r in finished})
    point_rows, pair_rows, reduced_rows, verdicts, figure_paths, walks = [], [], [], {}, [], {}
    problems = []
    kind = ""
    rank = {c: i for i, c in enumerate(order)}
    finished = sorted(finished, key=lambda r: (r.seed, -r.fraction, rank.get(r.config, 99)))
    for seed in seeds:
        runs = {f"{r.config}@{r.fraction:g}": r for r in finished if r.seed == seed}
        preds = {}
        for key, run in runs.items():
            try:
                preds[key] = run.predictions()
            except PredictionsError as e:
                problems.append(f"{run.workdirs[0].name}: {e}")
        if not preds:
            continue
        try:
            points = shared_points(preds)
        except (PredictionsError, ValueError) as e:
            problems.append(f"seed {seed}: runs not comparable ({e})")
            continue
        kind = next(iter(preds.values())).metric["kind"]
        by_key = {(runs[k].config, runs[k].fraction): p for k, p in points.items()}
        for key, p in points.items():
            for i, name in enumerate(p.names):
                point_rows.append({"seed": seed, "config": runs[key].config,
                                   "fraction": runs[key].fraction, "point": name,
                                   "value": p.estimate[i], "low": p.low[i], "high": p.high[i],
                                   "headline": i == p.headline,
                                   "fraction_reached": runs[key].reached})
        full = {c: p for (c, f), p in by_key.items() if f == 1.0}
        full_runs = {runs[k].config: runs[k] for k in runs if runs[k].fraction == 1.0}
        pairs = pairwise(full, order)
        pair_rows += [{"seed": seed, **r} for r in pairs]
        c2, reduced = conclusion2(kind, by_key, facts)
        reduced_rows += [{"seed": seed, **r} for r in reduced]
        c4, walk = conclusion4(kind, full, full_runs)
        walks[seed] = walk
        verdicts[seed] = [conclusion1(kind, full, full_runs), c2,
                          conclusion3(kind, full, pairs, facts), c4]
        if seed == seeds[0]:
            full_preds = {runs[k].config: p for k, p in preds.items() if runs[k].fraction == 1.0}
            synthetic = any(p.synthetic for p in preds.values())
            title = f"{app} seed {seed}" + (" SYNTHETIC data" if synthetic else "")
            figure_paths = figures(outdir, kind, facts, full_preds, by_key, runs,
                                   title=title) if full_preds else []
    tables = {"operating_points": write_csv(outdir / "tables" / "operating_points.csv",
                                             point_rows),
              "pairwise": write_csv(outdir / "tables" / "pairwise.csv", pair_rows),
              "reduced": write_csv(outdir / "tables" / "reduced_data.csv", reduced_rows),
              "conclusions": write_csv(outdir / "tables" / "conclusions.csv",
                                        [{"seed": s, **dataclasses.asdict(v)}
                                         for s, vs in verdicts.items() for v in vs])}
    paper = facts.get("paper_table")
    paper_rows = []
    if paper and seeds:
        ours = {(r["config"], r["point"]): r["value"] for r in point_rows
                if r["seed"] == seeds[0] and r["fraction"] == 1.0}
        for config, values in paper["rows"].items():
            row = {"config": config}
            for col, v in zip(paper["columns"], values, strict=True):
                row[f"ours_{col}_{paper['unit']}"] = ours.get((config, f"{col} error (um)"))
                row[f"paper_{col}_{paper['unit']}"] = v
            paper_rows.append(row)
        tables["paper"] = write_csv(outdir / "tables" / "paper_numbers.csv", paper_rows)
    return {"kind": kind, "seeds": seeds, "points": point_rows, "pairs": pair_rows,
            "reduced": reduced_rows, "verdicts": verdicts, "figures": figure_paths,
            "tables": tables, "paper": paper, "paper_rows": paper_rows, "walks": walks,
            "problems": problems}


def markdown(outdir: Path, sections: Mapping[str, Any]) -> list[str]:
    """The report's Markdown lines for the sections :func:`write` returned."""
    lines: list[str] = []
    seeds = sections["seeds"]
    if not seeds:
        return ["No run has finished yet: no figures, tables or conclusions."]
    first = seeds[0]
    lines += [f"## Operating points (all the training data, seed {first}, 95% intervals)", "",
              "| configuration | " + " | ".join(
                  dict.fromkeys(r["point"] for r in sections["points"])) + " |"]
    names = list(dict.fromkeys(r["point"] for r in sections["points"]))
    lines.append("|---" * (len(names) + 1) + "|")
    table: dict[tuple[str, float], dict[str, str]] = {}
    for r in sections["points"]:
        if r["seed"] == first:
            table.setdefault((r["config"], r["fraction"]), {})[r["point"]] = \
                f"{_fmt(r['value'], 3)} [{_fmt(r['low'], 3)}, {_fmt(r['high'], 3)}]"
    for (config, fraction), cells in table.items():
        label = config if fraction == 1.0 else f"{config} at {fraction:g}"
        lines.append(f"| {label} | " + " | ".join(cells.get(n, "n/a") for n in names) + " |")
    sig = [r for r in sections["pairs"] if r["seed"] == first and r["significant"]]
    lines += ["", f"## Pairwise differences (seed {first}; paired cluster bootstrap, "
              "Holm-corrected over the pairs of each operating point)", "",
              f"{len(sig)} of {sum(r['seed'] == first for r in sections['pairs'])} comparisons "
              "are significant at 0.05 after Holm" + (":" if sig else "."), ""]
    for r in sig:
        lines.append(f"- {r['point']}: {r['a']} - {r['b']} = {_fmt(r['diff'], 3)} "
                     f"[{_fmt(r['diff_low'], 3)}, {_fmt(r['diff_high'], 3)}], "
                     f"Holm p = {_fmt(r['p_holm'], 3)}")
    lines += ["", f"Every pair: `{sections['tables']['pairwise'].relative_to(outdir)}`."]
    if sections["reduced"]:
        lines += ["", "## Reduced training sets (change from all the training data)", "",
                  "| seed | fraction | " + " | ".join(
                      k for k in sections["reduced"][0] if k.endswith("_change")) +
                  " | difference [95%] | p |", "|---|---|---|---|---|---|"]
        for r in sections["reduced"]:
            changes = [r[k] for k in r if k.endswith("_change")]
            lines.append(f"| {r['seed']} | {r['fraction']:g} | " +
                         " | ".join(_fmt(c, 3) for c in changes) +
                         f" | {_fmt(r['difference'], 3)} [{_fmt(r['low'], 3)}, "
                         f"{_fmt(r['high'], 3)}] | {_fmt(r['p'], 3)} |")
    if sections["paper_rows"]:
        paper = sections["paper"]
        cols = list(paper["columns"])
        lines += ["", f"## Beside {paper['title']}", "",
                  "| configuration | " + " | ".join(f"ours {c} | paper {c}" for c in cols) +
                  " |", "|---" * (2 * len(cols) + 1) + "|"]
        unit = paper["unit"]
        for r in sections["paper_rows"]:
            cells = [f"{_fmt(r['ours_' + c + '_' + unit], 3)} | "
                     f"{_fmt(r['paper_' + c + '_' + unit], 3)}" for c in cols]
            lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    lines += ["", "## The paper's conclusions, tested on these runs", ""]
    for seed, verdicts in sections["verdicts"].items():
        if len(seeds) > 1:
            lines += [f"Seed {seed}:", ""]
        for v in verdicts:
            lines.append(f"{v.number}. *{v.claim}* **{v.verdict}**: {v.statement}")
        lines.append("")
    if sections["figures"]:
        lines += ["## Figures", ""]
        lines += [f"![{p.stem}]({p.relative_to(outdir)})" for p in sections["figures"]]
    lines += ["", "Tables: " + ", ".join(f"`{p.relative_to(outdir)}`"
                                        for p in sections["tables"].values()) + "."]
    if sections["problems"]:
        lines += ["", "Left out: " + "; ".join(sections["problems"]) + "."]
    return lines
