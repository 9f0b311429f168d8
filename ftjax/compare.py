"""python -m ftjax.compare RUN_A RUN_B: two runs compared on the same test items, from their
predictions files alone (no rescoring): the headline of each with its interval, and the paired
test of the difference (FROC: cluster bootstrap at every operating point; ROC: DeLong and a paired
bootstrap; boundaries: cluster bootstrap of the mean error).

    python -m ftjax.compare runs/pe_conv3 runs/pe_scratch
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from absl import flags

from ftjax import cli
from ftjax.predictions import Predictions, compare

flags.DEFINE_integer("n_boot", None, "bootstrap resamples (default: the runs' own)")
flags.DEFINE_bool("json", False, "print the comparison as JSON")
flags.adopt_module_key_flags(cli)


def _report(a: str, b: str) -> None:
    pa, pb = Predictions.read(a), Predictions.read(b)
    out = compare(pa, pb, n_boot=flags.FLAGS.n_boot)
    if flags.FLAGS.json:
        print(json.dumps(out, indent=2))
        return
    if pa.synthetic:
        print("SYNTHETIC data: a demonstration of the pipeline, not a medical finding")
    print(f"{out['metric']} on {len(pa)} items of {len(pa.cases)} cases")
    for name, run in (("A", a), ("B", b)):
        h = out[name.lower()]
        print(f"  {name} {run}: {h['value']:.4f} [{h['low']:.4f}, {h['high']:.4f}]")
    if "operating_points" in out:
        for x, d, lo, hi, p in zip(out["operating_points"], out["diff"], out["diff_low"],
                                   out["diff_high"], out["p_value"], strict=True):
            print(f"  A - B at {x:g}: {d:+.4f} [{lo:+.4f}, {hi:+.4f}], paired bootstrap p={p:.3g}")
    elif "delong_p_value" in out:
        print(f"  A - B: {out['diff']:+.4f}, DeLong p={out['delong_p_value']:.3g}, paired "
              f"bootstrap p={out['bootstrap_auc_p_value']:.3g}")
    else:
        print(f"  A - B: {out['diff']:+.2f}, paired bootstrap p={out['p_value']:.3g}")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 3:
        raise ValueError("usage: python -m ftjax.compare RUN_A RUN_B (two run workdirs)")
    _report(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
