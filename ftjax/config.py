"""The training configuration: one frozen dataclass, every default the paper's (PAPER.md) unless
marked [assumed]; presets fill in what the paper does not report."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ftjax.apps import train_presets
from ftjax.layerwise import TUNE_FROM
from ftjax.models.alexnet import VARIANTS, input_size

PARALLEL = ("jit", "pmap")

# What a preset changes; anything given explicitly wins. smoke: minutes on a 2-core CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 3, "batch_size": 32, "patience": 3},
    "paper": {"epochs": 50, "batch_size": 128, "patience": 8},  # [assumed]: not reported
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; stored in the workdir so a rerun can resume or refuse."""

    app: str
    tune_from: str = "conv1"
    data: str = "synthetic"
    preset: str = "smoke"
    arch: str = "caffe"
    weights: str = "imagenet"  # imagenet | random | path to a params .npz
    epochs: int = 3
    batch_size: int = 32
    patience: int = 3  # early stopping: epochs without a better validation AUC
    train_fraction: float = 1.0  # of the training cases (whole cases are removed)
    val_fraction: float = 0.2  # cases held out for validation [paper: 80/20]
    seed: int = 0
    parallel: str = "jit"
    distributed: bool = False
    input_size: int = 0  # 0: the variant's own (227 caffe, 224 torchvision)
    cache_trunk_gib: float = 4.0  # fc6..fc8 tuning: frozen-trunk features cached up to this; 0 off
    # The paper's Caffe SGD.
    base_lr: float = 0.001
    fc8_lr_mult: float = 10.0
    bias_lr_mult: float = 2.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_per_epoch: float = 0.95
    # Bookkeeping: no effect on the result.
    log_every: int = 20
    checkpoint_every: int = 0  # steps; 0: at the end of every epoch only
    eval_chunk: int = 64  # candidates per scoring call

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"invalid configuration: {msg}")

        if self.tune_from not in TUNE_FROM:
            bad(f"tune_from={self.tune_from!r}; expected one of {', '.join(TUNE_FROM)}")
        if self.arch not in VARIANTS:
            bad(f"arch={self.arch!r}; expected one of {VARIANTS}")
        if self.preset not in PRESETS:
            bad(f"preset={self.preset!r}; expected one of {tuple(PRESETS)}")
        if self.parallel not in PARALLEL:
            bad(f"parallel={self.parallel!r}; expected one of {PARALLEL}")
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


def make_config(app: str, preset: str = "smoke", **overrides: Any) -> TrainConfig:
    """A config from a preset plus explicit overrides (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"invalid configuration: preset={preset!r}; expected one of "
                         f"{tuple(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    app_defaults = train_presets(app).get(preset, {})
    return TrainConfig(app=app, preset=preset, **(PRESETS[preset] | app_defaults | given))
