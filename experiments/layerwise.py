"""The paper's study for one application: the nine tuning depths on one split and the
reduced-training-set runs (PAPER.md), each repeated over ``--seeds``, as independent trainer
runs; then the tables and a report read from the runs' own files.

    python -m experiments.layerwise --app=pe --outdir=study/pe [--seeds=3] [--jobs=2]
    python -m experiments.layerwise --app=pe --outdir=study/pe --print_commands  # a scheduler
    python -m experiments.layerwise --app=pe --outdir=study/pe --report_only

Each run is ``python -m ftjax.train`` in ``OUTDIR/runs/<config>-f<fraction>-s<seed>``: a run
with a ``results.json`` is never redone, and a stopped one resumes from its checkpoint when the
sweep is started again. ``--jobs=N`` runs N at once, each pinned to its share of the CPU cores
(and of ``CUDA_VISIBLE_DEVICES`` when set). Every flag this script does not know (``--weights``,
``--arch``, ``--preset``, ``--data``, ...) passes through to every run. Outputs, all read from the
runs' files (``experiments.study_report``): ``OUTDIR/tables/*.csv`` (one row per finished run,
mean and spread over seeds, operating points with intervals, pairwise tests with Holm's
correction, the reduced-data test, the conclusions), ``OUTDIR/figures/*.png`` and
``OUTDIR/report.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments import study_report
from ftjax.apps import study_facts

CONFIGS = ("fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1", "scratch")
# The order runs start in: each depth's frozen trunk (``ftjax.trunk_cache``) is then computed
# from the one cached just before it, so the sweep pays for one forward pass of the trunk.
RUN_ORDER = ("conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8", "conv1", "scratch")


@dataclasses.dataclass(frozen=True)
class Run:
    """One trainer run of the study (``fold`` of ``folds`` under cross-validation)."""

    config: str
    fraction: float
    seed: int
    fold: int = 0
    folds: int = 0

    @property
    def name(self) -> str:
        tail = f"-k{self.fold}" if self.folds else ""
        return f"{self.config}-f{self.fraction:g}-s{self.seed}{tail}"

    @property
    def group(self) -> tuple[str, float, int]:
        """The configuration this run is (a fold of)."""
        return self.config, self.fraction, self.seed

    def argv(self, app: str, outdir: Path, passthrough: Sequence[str]) -> list[str]:
        folds = [f"--folds={self.folds}", f"--fold={self.fold}"] if self.folds else []
        return [sys.executable, "-m", "ftjax.train", f"--app={app}",
                f"--tune_from={self.config}", f"--workdir={outdir / 'runs' / self.name}",
                f"--seed={self.seed}", f"--train_fraction={self.fraction:g}", *folds,
                *passthrough]


def plan(configs: Sequence[str], seeds: int, facts: dict[str, Any],
         folds: int = 0) -> list[Run]:
    """Every configuration on all the training data (in ``RUN_ORDER``), then the paper's reduced
    training sets for its reduced configurations (those of ``configs``), each seed in turn;
    under ``folds=K`` every one of them K times, once per test fold."""
    configs = sorted(configs, key=RUN_ORDER.index)
    runs = [Run(c, 1.0, s) for s in range(seeds) for c in configs]
    runs += [Run(c, float(f), s) for s in range(seeds) for f in facts["reduced_fractions"]
             for c in facts["reduced_configs"] if c in configs]
    if folds:
        runs = [dataclasses.replace(r, fold=k, folds=folds) for r in runs for k in range(folds)]
    return runs


def finished(outdir: Path, run: Run) -> dict[str, Any] | None:
    """The run's results when it has finished (its ``results.json`` holds a test)."""
    path = outdir / "runs" / run.name / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return results if "test" in results else None


def _shares(jobs: int) -> list[dict[str, Any]]:
    """Per job slot its CPU cores and, when CUDA_VISIBLE_DEVICES is set, its GPUs."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    out = []
    for j in range(jobs):
        share: dict[str, Any] = {"cores": cores[j::jobs] or cores}
        if gpus:
            share["gpus"] = gpus[j::jobs] or gpus
        out.append(share)
    return out


def _start(argv: list[str], share: dict[str, Any], log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    if "gpus" in share:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(share["gpus"])
    cores = share["cores"]
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None  # noqa: E731
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=pin)


def sweep(app: str, outdir: Path, runs: Sequence[Run], passthrough: Sequence[str],
          jobs: int, keep_latest: bool = False) -> list[str]:
    """Run every unfinished run, ``jobs`` at once; returns the names of the runs that failed.
    A finished run's latest checkpoint (parameters and optimizer state, about 0.5 GB for
    AlexNet) is removed unless ``keep_latest``: only resuming needs it."""
    todo = [r for r in runs if finished(outdir, r) is None]
    print(f"study {app}: {len(runs) - len(todo)} of {len(runs)} runs already finished; "
          f"{len(todo)} to run, {jobs} at once", flush=True)
    free, active, failed, done = _shares(jobs), {}, [], 0
    while todo or active:
        while todo and free:
            run, share = todo.pop(0), free.pop(0)
            log = outdir / "logs" / f"{run.name}.log"
            active[run] = (_start(run.argv(app, outdir, passthrough), share, log), share,
                           time.monotonic())
        time.sleep(0.2)
        for run, (proc, share, start) in list(active.items()):
            if proc.poll() is None:
                continue
            del active[run]
            free.append(share)
            done += 1
            minutes = (time.monotonic() - start) / 60
            if proc.returncode == 0:
                status = "finished"
                if not keep_latest and finished(outdir, run) is not None:
                    # Only a resumption needs it; the best snapshot stays for evaluate/predict.
                    shutil.rmtree(outdir / "runs" / run.name / "checkpoints" / "latest",
                                  ignore_errors=True)
            else:
                failed.append(run.name)
                status = (f"FAILED with status {proc.returncode} (see "
                          f"{outdir / 'logs' / (run.name + '.log')})")
            print(f"study {app}: {run.name} {status} in {minutes:.1f} min ({done} of "
                  f"{done + len(active) + len(todo)})", flush=True)
    return failed


def collect(outdir: Path, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per finished run, every number read from its ``results.json``."""
    rows = []
    for run in runs:
        results = finished(outdir, run)
        if results is None:
            continue
        head = results["test"]["headline"]
        rows.append({"config": run.config, "fraction": run.fraction, "seed": run.seed,
                     **({"fold": run.fold} if run.folds else {}), "metric": head["name"],
                     "value": head["value"], "low": head["low"], "high": head["high"],
                     "fraction_reached": results["data"].get("train_fraction_reached"),
                     "best_val_auc": results.get("best_val_auc"),
                     "epochs_run": results.get("epochs_run"),
                     "synthetic": bool(results.get("synthetic"))})
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample SD of the headline over seeds, per configuration and fraction (``rows``:
    one per configuration and seed, its folds pooled)."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["config"], row["fraction"]), []).append(row)
    out = []
    for (config, fraction), group in groups.items():
        values = [r["value"] for r in group if r["value"] is not None
                  and math.isfinite(r["value"])]
        mean = sum(values) / len(values) if values else math.nan
        sd = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
              if len(values) > 1 else math.nan)
        reached = [r["fraction_reached"] for r in group if r["fraction_reached"] is not None]
        out.append({"config": config, "fraction": fraction, "seeds": len(group), "mean": mean,
                    "sd": sd, "fraction_reached": min(reached) if reached else None})
    return out


def _number(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"


def report(app: str, outdir: Path, runs: Sequence[Run]) -> Path:
    """The tables, figures and ``report.md`` from the finished runs."""
    rows = collect(outdir, runs)
    study_report.write_csv(outdir / "tables" / "runs.csv", rows)
    missing = [r.name for r in runs if finished(outdir, r) is None]
    groups: dict[tuple[str, float, int], list[Run]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    done = [study_report.Finished(*key, tuple(outdir / "runs" / r.name for r in group),
                                  tuple(finished(outdir, r) for r in group))
            for key, group in groups.items() if not {r.name for r in group} & set(missing)]
    sections = study_report.write(app, outdir, done, study_facts(app), CONFIGS)
    summary = summarise([r for r in sections["points"] if r["headline"]])
    study_report.write_csv(outdir / "tables" / "summary.csv", summary)
    metric = rows[0]["metric"] if rows else "(no finished run)"
    lines = [f"# Layer-wise study: `{app}`", ""]
    if any(r["synthetic"] for r in rows):
        lines += ["**SYNTHETIC data**: these runs demonstrate the pipeline; they are not a "
                  "medical finding.", ""]
    lines += [f"{len(rows)} of {len(runs)} runs finished. Headline: {metric}.", "",
              "## Mean and SD over seeds", "",
              "| configuration | training fraction (reached) | seeds | mean | SD |",
              "|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['config']} | {s['fraction']:g} ({_number(s['fraction_reached'])}) "
                     f"| {s['seeds']} | {_number(s['mean'])} | {_number(s['sd'])} |")
    lines += [""] + study_report.markdown(outdir, sections)
    if missing:
        lines += ["", f"Not finished (rerun the sweep to continue): {', '.join(missing)}."]
    path = outdir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", required=True)
    parser.add_argument("--outdir", required=True, type=Path)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--folds", type=int, default=0,
                        help="grouped K-fold cross-validation: every run once per test fold, "
                        "the folds' predictions pooled in the report")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--print_commands", action="store_true")
    parser.add_argument("--keep_latest", action="store_true",
                        help="keep each finished run's latest checkpoint (default: only its "
                        "best, about 0.5 GB a run for AlexNet)")
    parser.add_argument("--report_only", action="store_true")
    args, passthrough = parser.parse_known_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {unknown}; expected some of {', '.join(CONFIGS)}")
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be >= 1")
    if args.folds == 1 or args.folds < 0:
        parser.error(f"--folds={args.folds}: expected 0 (no cross-validation) or K >= 2")
    try:
        facts = dict(study_facts(args.app))
    except ValueError as e:
        parser.error(str(e))
    runs = plan(configs, args.seeds, facts, args.folds)
    if args.print_commands:
        for run in runs:
            print(" ".join(run.argv(args.app, args.outdir, passthrough)))
        return 0
    failed = [] if args.report_only else sweep(args.app, args.outdir, runs, passthrough,
                                               args.jobs, args.keep_latest)
    print(f"study {args.app}: report {report(args.app, args.outdir, runs)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
