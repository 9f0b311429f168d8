"""cimt's dense inference methods side by side on a trained run's test images: pixels/s, the
difference of the probability maps, and the boundary errors each gives.

    python -m experiments.bench.cimt_dense --workdir=runs/cimt_scratch --images=2

The convolutional method is exact only where a patch's own border does not matter
(``ftjax.dense``); this measures what its approximation costs on the task itself. Prints the
CPU it ran on and writes ``cimt_dense.json`` beside the run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from experiments.bench.machine import cpu_name
from ftjax import xla
from ftjax.apps import make_app
from ftjax.dense import probability_map
from ftjax.metrics import boundary_errors
from ftjax.models.alexnet import AlexNet
from ftjax.scoring import Scorer
from ftjax.trainer import best_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a trained cimt run")
    parser.add_argument("--images", type=int, default=2, help="test images to segment")
    args = parser.parse_args()
    xla.retain_host_memory()
    config, params, _ = best_checkpoint(args.workdir)
    app = make_app(config.app, config.data, config.preset, config.data_seed,
                   config.val_fraction, config.app_options)
    app.log = None
    scorer = Scorer(AlexNet(num_classes=3, variant=config.arch), params,
                    size=config.network_input_size, chunk=config.eval_chunk)
    images = [im for c in app.cases("test") for im in app.images.images(c)][:args.images]
    out: dict = {"cpu": cpu_name(), "workdir": str(args.workdir), "arch": config.arch,
                 "input_size": config.network_input_size,
                 "patch": app.settings.patch_size, "methods": {}}
    maps = {}
    for method in ("convolutional", "patches"):
        probability_map(scorer, images[0].image[:40, :40], app.settings.patch_size, method)
        pixels, seconds, errors = 0, 0.0, []
        for im in images:
            start = time.perf_counter()
            seg = app.segment(scorer, im, method)
            seconds += time.perf_counter() - start
            pixels += seg.pixels
            e = boundary_errors(seg.li, im.li, seg.ma, im.ma, im.mm_per_pixel)
            errors.append((e.li_um, e.ma_um))
            maps.setdefault(method, []).append(seg.probabilities)
        li, ma = np.mean(errors, axis=0)
        out["methods"][method] = {"pixels_per_s": pixels / seconds, "li_um": li, "ma_um": ma}
        print(f"{method:>13}: {pixels / seconds:7.0f} px/s (segmentation included), "
              f"LI {li:6.1f} um, MA {ma:6.1f} um over {len(images)} images", flush=True)
    a, b = (np.concatenate([m.reshape(-1, 3) for m in maps[k]])
            for k in ("convolutional", "patches"))
    out["map_difference"] = {"mean_abs": float(np.abs(a - b).mean()),
                             "max_abs": float(np.abs(a - b).max()),
                             "correlation_interface": float(np.corrcoef(
                                 1 - a[:, 0], 1 - b[:, 0])[0, 1])}
    out["speedup"] = (out["methods"]["convolutional"]["pixels_per_s"]
                      / out["methods"]["patches"]["pixels_per_s"])
    print(f"cpu: {out['cpu']}; maps: {out['map_difference']}; speedup {out['speedup']:.2f}x")
    Path(args.workdir, "cimt_dense.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
