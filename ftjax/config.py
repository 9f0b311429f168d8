"""The run's configuration: one frozen dataclass, the single source of every field, its default and
its help text; the command-line flags are generated from it (``ftjax.cli.define_flags``).

Every default is the paper's (PAPER.md) unless marked [assumed]; presets fill in what the paper
does not report, and an application may add its own preset values (its ``presets.py``), which the
caller passes to :func:`make_config` (``ftjax.trainer.make_config`` looks them up by app name).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ftjax.layerwise import TUNE_FROM
from ftjax.models.alexnet import VARIANTS, input_size

PARALLEL = ("jit", "pmap")

# What a preset changes; anything given explicitly wins. smoke: minutes on a 2-core CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 3, "batch_size": 32, "patience": 3},
    "paper": {"epochs": 50, "batch_size": 128, "patience": 8},  # [assumed]: not reported
}


def _field(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; stored in the workdir so a rerun can resume or refuse."""

    app: str = _field("", "application: pe, or module:function for your own (required)")
    tune_from: str = _field("conv1", "shallowest layer that trains (all above it train too); "
                            "scratch = random init, every layer", TUNE_FROM)
    data: str = _field("synthetic", "synthetic (generated from --data_seed), or DATASET:PATH of "
                       "a public dataset")
    preset: str = _field("smoke", "smoke: minutes on a laptop CPU; paper: the paper's patch "
                         "counts", tuple(PRESETS))
    arch: str = _field("caffe", "AlexNet variant: caffe (BVLC, the paper's) or torchvision",
                       VARIANTS)
    weights: str = _field("imagenet", "imagenet (official weights, downloaded once), random, or "
                          "a .npz / .caffemodel / .pth file")
    epochs: int = _field(3, "maximum epochs")
    batch_size: int = _field(32, "global batch size (divisible by the device count)")
    patience: int = _field(3, "early stopping: epochs without a better validation AUC")
    train_fraction: float = _field(1.0, "share of the training units (PEs, videos) kept, removing "
                                   "whole cases (the paper's reduced training sets)")
    val_fraction: float = _field(0.2, "fraction of the training cases held out for validation "
                                 "(paper: 80/20)")
    data_seed: int = _field(0, "seed of the data: synthetic cases, the train / validation / test "
                            "split, which cases a reduced training set keeps")
    seed: int = _field(0, "seed of the training: initialisation, data order, dropout")
    parallel: str = _field("jit", "data-parallel step: jit (sharded over a ('data',) mesh) or "
                           "pmap", PARALLEL)
    distributed: bool = _field(False, "multi-host: call jax.distributed.initialize() first "
                               "(TPU VM pods)")
    input_size: int = _field(0, "network input side; 0: the variant's own (227 caffe, 224 "
                             "torchvision)")
    cache_trunk_gib: float = _field(4.0, "fc6..fc8 tuning: cache the frozen trunk's features "
                                    "when they fit in this many GiB (0: never)")
    # The paper's Caffe SGD.
    base_lr: float = _field(0.001, "learning rate of the tuned layers")
    fc8_lr_mult: float = _field(10.0, "fc8 rate multiplier when fine-tuning")
    bias_lr_mult: float = _field(2.0, "bias rate multiplier")
    momentum: float = _field(0.9, "SGD momentum")
    weight_decay: float = _field(5e-4, "weight decay on weights (not biases)")
    lr_decay_per_epoch: float = _field(0.95, "rate factor applied once per epoch")
    # Bookkeeping: no effect on the result.
    log_every: int = _field(20, "steps between progress lines")
    checkpoint_every: int = _field(0, "steps between mid-epoch checkpoints (0: epoch ends only)")
    eval_chunk: int = _field(64, "candidates per scoring call (validation and test)")

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"invalid configuration: {msg}")

        if not self.app:
            bad("app is required (--app=pe, or module:function for your own application)")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                bad(f"{f.name}={getattr(self, f.name)!r}; expected one of {', '.join(choices)}")
        if not 0 < self.train_fraction <= 1:
            bad(f"train_fraction={self.train_fraction} must be in (0, 1]")
        if not 0 < self.val_fraction < 1:
            bad(f"val_fraction={self.val_fraction} must be in (0, 1)")
        for name in ("epochs", "batch_size", "patience", "log_every", "eval_chunk"):
            if getattr(self, name) < 1:
                bad(f"{name}={getattr(self, name)} must be >= 1")
        if self.tune_from == "scratch" and self.weights == "imagenet":
            object.__setattr__(self, "weights", "random")  # scratch never loads pretrained weights
        if self.tune_from != "scratch" and self.weights == "random":
            bad(f"tune_from={self.tune_from} fine-tunes pretrained weights; --weights=random "
                "only makes sense with --tune_from=scratch")

    @property
    def network_input_size(self) -> int:
        """Side of the square network input the patches are resized to on the device."""
        return self.input_size or input_size(self.arch)

    # Fields that may differ between a run and its resumption.
    BOOKKEEPING = ("log_every", "checkpoint_every", "eval_chunk", "epochs", "patience")

    def result_fields(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.BOOKKEEPING}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls(**json.loads(text))


def make_config(app: str, preset: str = "smoke",
                app_presets: Mapping[str, Mapping[str, Any]] | None = None,
                **overrides: Any) -> TrainConfig:
    """A config from the trainer's preset, the application's values for that preset
    (``app_presets[preset]``), then explicit overrides (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"invalid configuration: preset={preset!r}; expected one of "
                         f"{', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    app_defaults = dict((app_presets or {}).get(preset, {}))
    return TrainConfig(app=app, preset=preset, **(PRESETS[preset] | app_defaults | given))
