"""The PE candidate generator on the SYNTHETIC test set, and the PE pipeline's throughputs.

    python -m experiments.pe_generator                      # paper preset: 48 test scans
    python -m experiments.pe_generator --preset=smoke --score=4

Prints the tobogganing generator's per-clot sensitivity and candidates per scan on the test
patients of the PE app's split (the same scans a training run is scored on), then candidates/s of
candidate finding, of vessel-aligned patch extraction (all 54 patches of every candidate, after
one warm-up scan has compiled the sampler) and, with --score=N, of scoring N candidates with a
randomly initialised Caffe AlexNet at its 227 px input (54 patches each). SYNTHETIC scans: the
figures describe the generator on made-up data, not its medical performance.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from ftjax import scoring
from ftjax.apps.pe.app import PRESETS, PEApp
from ftjax.apps.pe.toboggan import evaluate_generator, find_candidates, lumen_mask
from ftjax.apps.pe.vessel import vessel_axes, vessel_patches
from ftjax.models import AlexNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--data", default="synthetic", help="synthetic | cadpe:DIR | fumpe:DIR")
    parser.add_argument("--data_seed", type=int, default=0)
    parser.add_argument("--score", type=int, default=0, help="candidates to score (0: skip)")
    args = parser.parse_args()
    settings = PRESETS[args.preset]
    app = PEApp(args.data, settings, args.data_seed, log=None)
    label = "SYNTHETIC " if app.synthetic else ""
    cases = app.cases("test")

    t = time.perf_counter()
    scans = [app.load_scan(c) for c in cases]
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    stats = evaluate_generator(scans, settings.toboggan)
    t_find = time.perf_counter() - t
    print(f"{label}test scans: {stats.n_scans} ({args.preset} preset, data seed {args.data_seed}), "
          f"loaded in {t_load / len(scans):.2f} s/scan")
    print(f"generator: {stats.n_clots} clots, {stats.n_clots_hit} hit: sensitivity "
          f"{stats.sensitivity:.3f}; {stats.n_candidates} candidates "
          f"({stats.candidates_per_scan:.1f}/scan), {stats.n_true_candidates} on a clot")
    print(f"candidate finding (lumen mask + tobogganing + statistics): "
          f"{stats.n_candidates / t_find:.1f} candidates/s, {t_find / len(scans):.2f} s/scan")

    t_axes = t_cut = 0.0
    n_cut = 0
    for i, scan in enumerate(scans):
        lumen = lumen_mask(scan.hu, scan.spacing, settings.toboggan)
        cands = find_candidates(scan.hu, scan.spacing, settings.toboggan, lumen=lumen)
        t = time.perf_counter()
        axes = vessel_axes(cands, scan.spacing, lumen)
        t_a = time.perf_counter() - t
        t = time.perf_counter()
        patches = vessel_patches(scan.hu, scan.spacing, cands.centres, axes, settings.widths_mm,
                                 settings.shift_fractions, settings.rotations,
                                 settings.patch_size, settings.hu_window)
        t_c = time.perf_counter() - t
        if i:  # the first scan compiles the sampler
            t_axes, t_cut, n_cut = t_axes + t_a, t_cut + t_c, n_cut + len(cands)
    k = settings.patches_per_candidate
    if n_cut:
        print(f"patch extraction ({k} patches of {settings.patch_size} px per candidate, CPU): "
              f"{n_cut / (t_axes + t_cut):.1f} candidates/s (vessel axes {n_cut / t_axes:.0f}/s, "
              f"sampling {n_cut / t_cut:.1f}/s, {n_cut * k / t_cut:.0f} patches/s) over "
              f"{len(scans) - 1} scans")

    if args.score:
        model = AlexNet(num_classes=2, variant="caffe")
        params = model.init(jax.random.key(0), np.zeros((1, 227, 227, 3), np.float32))["params"]
        batch = np.resize(patches, (args.score, *patches.shape[1:]))

        def score() -> np.ndarray:
            return scoring.score_candidates(model.apply, {"params": params}, batch, size=227,
                                            chunk_size=args.score)

        score()  # compile
        t = time.perf_counter()
        score()
        dt = time.perf_counter() - t
        print(f"scoring ({k} patches per candidate at 227 px, {jax.default_backend()}): "
              f"{args.score / dt:.2f} candidates/s, {args.score * k / dt:.1f} patches/s")


if __name__ == "__main__":
    main()
