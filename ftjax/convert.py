"""python -m ftjax.convert: official ImageNet AlexNet weights -> ftjax params (.npz).

    python -m ftjax.convert --arch=caffe                       # download (once), convert, cache
    python -m ftjax.convert --arch=torchvision --src=alexnet-owt-7be5be79.pth --dst=tv.npz

Prints the parameter count of every layer and a sha256 of the converted params.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import flags

from ftjax import cli, weights
from ftjax.models.alexnet import LAYERS, VARIANTS

FLAGS = flags.FLAGS
flags.DEFINE_enum("arch", "caffe", list(VARIANTS), "which AlexNet: the paper's Caffe BVLC model "
                  "or torchvision's")
flags.DEFINE_string("src", None, "weights file to convert (.caffemodel or torchvision .pth); "
                    "default: the official file, downloaded into the cache when absent")
flags.DEFINE_string("dst", None, "output .npz; default: the cache entry ftjax.weights.pretrained "
                    "reads")
flags.adopt_module_key_flags(cli)


def convert(arch: str, src: str | None, dst: str | None) -> str:
    """Convert and save; returns the report the command prints.

    Without ``--dst`` the result goes to the cache that ``ftjax.weights.pretrained`` reads, which
    only the official file (hash-checked) may enter.
    """
    if src is None:
        params = weights.pretrained(arch)
    else:
        if dst is None:
            weights.verify(Path(src), weights.SOURCES[arch])
        params = weights.CONVERTERS[arch](src)
    out = weights.converted_path(arch)
    if dst is not None or src is not None:
        out = weights.save(params, dst or out)
    lines = [f"{'layer':8s}{'kernel':>22s}{'params':>14s}"]
    total = 0
    for layer in LAYERS:
        n = sum(int(np.size(v)) for v in params[layer].values())
        total += n
        lines.append(f"{layer:8s}{str(tuple(params[layer]['kernel'].shape)):>22s}{n:>14,d}")
    lines.append(f"{'total':8s}{'':>22s}{total:>14,d}")
    lines.append(f"sha256 {weights.checksum(params)}")
    lines.append(f"wrote {out}")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    cli.no_arguments(argv)
    print(convert(FLAGS.arch, FLAGS.src, FLAGS.dst))
    return 0


def run() -> None:
    """The ``ftjax-convert`` entry point."""
    sys.exit(cli.run(main))


if __name__ == "__main__":
    run()
