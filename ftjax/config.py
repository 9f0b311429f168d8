"""The run's configuration: one frozen dataclass, the single source of every field, its default and
its help text; the command-line flags are generated from it (``ftjax.cli.define_flags``).

Every default is the paper's (PAPER.md) unless marked [assumed]; presets fill in what the paper
does not report, and an application may add its own preset values (its ``presets.py``), which the
caller passes to :func:`make_config` (``ftjax.trainer.make_config`` looks them up by app name).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ftjax.layerwise import TUNE_FROM
from ftjax.models.alexnet import VARIANTS, input_size

PARALLEL = ("jit", "pmap")
# Network input sides a config accepts: from 63, every pooling window of both variants lies
# inside its input (pool5 is 1x1 at 63); above 1024 the activations alone outgrow most devices.
MIN_INPUT, MAX_INPUT = 63, 1024

# What a preset changes; anything given explicitly wins. smoke: minutes on a 2-core CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 3, "batch_size": 32, "patience": 3},
    "paper": {"epochs": 50, "batch_size": 128, "patience": 8},  # [assumed]: not reported
}


def _field(default: Any, help: str, choices: tuple[str, ...] | None = None,
           check: tuple[str, Callable[[Any], bool]] | None = None) -> Any:
    """A config field: its default, its help text, and what values are valid (``choices``, or a
    ``check``: a description and a predicate)."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "choices": choices, "check": check})


def _range(low: float, high: float, low_open: bool = False,
           high_open: bool = False) -> tuple[str, Callable[[Any], bool]]:
    def num(x: float) -> str:
        return f"{x:g}" if not float(x).is_integer() or math.isinf(x) else str(int(x))

    text = f"in {'(' if low_open else '['}{num(low)}, {num(high)}{')' if high_open else ']'}"
    return text, lambda v: (v > low if low_open else v >= low) and \
        (v < high if high_open else v <= high)


_POSITIVE = _range(1, math.inf)  # counts: at least 1
_SEED = _range(0, 2**31 - 1)
_NONNEGATIVE = _range(0, math.inf, high_open=True)
_INPUT_SIZE = (f"0 (the variant's own) or in [{MIN_INPUT}, {MAX_INPUT}]",
               lambda v: v == 0 or MIN_INPUT <= v <= MAX_INPUT)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; stored in the workdir so a rerun can resume or refuse."""

    app: str = _field("", "application: pe, polyp, frames, or module:function for your own "
                      "(required)")
    tune_from: str = _field("conv1", "shallowest layer that trains (all above it train too); "
                            "scratch = random init, every layer; auto = fc8, then one layer "
                            "deeper at a time while the validation AUC improves (PAPER.md, "
                            "conclusion 4)", (*TUNE_FROM, "auto"))
    auto_min_gain: float = _field(-1.0, "--tune_from=auto: the validation AUC gain a deeper "
                                  "depth must exceed to go on; -1: the gain's own bootstrap "
                                  "noise (its SD over the validation candidates)",
                                  check=_range(-1, 1))
    auto_chain: bool = _field(False, "--tune_from=auto: start each depth from the previous "
                              "depth's tuned trunk instead of the ImageNet weights (a "
                              "departure from the paper's independent runs)")
    data: str = _field("synthetic", "synthetic (generated from --data_seed), or DATASET:PATH of "
                       "a public dataset")
    test_data: str = _field("", "DATASET:PATH of an external test set: train and validate on "
                            "every case of --data, test on every case of this one (e.g. "
                            "--data=cvc-clinicdb:DIR --test_data=etis-larib:DIR)")
    folds: int = _field(0, "grouped K-fold cross-validation by case (patient, video, subject): "
                        "test on fold --fold of K; 0: the preset's held-out test share",
                        check=_range(0, 1000))
    fold: int = _field(0, "with --folds=K: the fold tested, 0..K-1", check=_range(0, 999))
    preset: str = _field("smoke", "smoke: minutes on a laptop CPU; paper: the paper's patch "
                         "counts", tuple(PRESETS))
    app_options: str = _field("", "the application's own settings over its preset, "
                              "NAME=VALUE[,NAME=VALUE...] (e.g. frames: train_crops=200,"
                              "test_crops=200; the names are the fields of the app's Settings)")
    arch: str = _field("caffe", "AlexNet variant: caffe (BVLC, the paper's) or torchvision",
                       VARIANTS)
    dtype: str = _field("float32", "compute dtype of activations and products: float32 (the "
                        "paper's) or bfloat16 (accelerators; parameters, optimizer state and "
                        "the loss stay float32)", ("float32", "bfloat16"))
    weights: str = _field("imagenet", "imagenet (official weights, downloaded once), random, or "
                          "a .npz / .caffemodel / .pth file")
    epochs: int = _field(3, "maximum epochs", check=_POSITIVE)
    batch_size: int = _field(32, "global batch size (divisible by the device count)",
                             check=_POSITIVE)
    patience: int = _field(3, "early stopping: epochs without a better validation AUC",
                           check=_POSITIVE)
    train_fraction: float = _field(1.0, "share of the training units (PEs, videos) kept, removing "
                                   "whole cases (the paper's reduced training sets)",
                                   check=_range(0, 1, low_open=True))
    val_fraction: float = _field(0.2, "fraction of the training cases held out for validation "
                                 "(paper: 80/20)", check=_range(0, 1, True, True))
    data_seed: int = _field(0, "seed of the data: synthetic cases, the train / validation / test "
                            "split, which cases a reduced training set keeps", check=_SEED)
    seed: int = _field(0, "seed of the training: initialisation, data order, dropout",
                       check=_SEED)
    parallel: str = _field("jit", "data-parallel step: jit (sharded over a ('data',) mesh) or "
                           "pmap", PARALLEL)
    distributed: bool = _field(False, "multi-host: call jax.distributed.initialize() first "
                               "(TPU VM pods)")
    input_size: int = _field(0, "network input side; 0: the variant's own (227 caffe, 224 "
                             "torchvision)", check=_INPUT_SIZE)
    cache_trunk_gib: float = _field(4.0, "tuning above conv1: the frozen trunk's features are "
                                    "computed once into $FTJAX_CACHE/trunk (shared by a sweep's "
                                    "runs), held in memory up to this many GiB and memory-mapped "
                                    "beyond (0: never cache)", check=_NONNEGATIVE)
    # The paper's Caffe SGD.
    base_lr: float = _field(0.001, "learning rate of the tuned layers",
                            check=_range(0, 10, low_open=True))
    fc8_lr_mult: float = _field(10.0, "fc8 rate multiplier when fine-tuning", check=_NONNEGATIVE)
    bias_lr_mult: float = _field(2.0, "bias rate multiplier", check=_NONNEGATIVE)
    momentum: float = _field(0.9, "SGD momentum", check=_range(0, 1, high_open=True))
    weight_decay: float = _field(5e-4, "weight decay on weights (not biases)", check=_NONNEGATIVE)
    lr_decay_per_epoch: float = _field(0.95, "rate factor applied once per epoch",
                                       check=_range(0, 1, low_open=True))
    # Bookkeeping: no effect on the result.
    log_every: int = _field(20, "steps between progress lines", check=_POSITIVE)
    checkpoint_every: int = _field(0, "steps between mid-epoch checkpoints (0: epoch ends only)",
                                   check=_range(0, math.inf))
    eval_chunk: int = _field(64, "candidates per scoring call (validation and test)",
                             check=_POSITIVE)

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"invalid configuration: {msg}")

        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                value, ok = float(value), True
            if not ok:
                bad(f"--{f.name}={value!r}: expected {kind.__name__}")
            if kind is float and not math.isfinite(value):
                bad(f"--{f.name}={value}: expected a finite number")
            choices, check = f.metadata.get("choices"), f.metadata.get("check")
            if choices and value not in choices:
                bad(f"--{f.name}={value!r}; expected one of {', '.join(choices)}")
            if check and not check[1](value):
                bad(f"--{f.name}={value}; expected {check[0]}")
        if not self.app:
            bad("--app is required (pe, polyp, frames, cimt, or module:function for your own "
                "application)")
        if self.folds == 1 or (self.folds and self.fold >= self.folds) or \
                (self.fold and not self.folds):
            bad(f"--folds={self.folds} --fold={self.fold}: expected K >= 2 folds and a fold "
                "in 0..K-1 (or --folds=0 and --fold=0: no cross-validation)")
        if self.folds and self.test_data:
            bad("--folds and --test_data exclude each other: cross-validate on --data, or test "
                "on an external set")
        if self.tune_from == "scratch" and self.weights == "imagenet":
            object.__setattr__(self, "weights", "random")  # scratch never loads pretrained weights
        if self.tune_from != "scratch" and self.weights == "random":
            bad(f"--tune_from={self.tune_from} fine-tunes pretrained weights; --weights=random "
                "only makes sense with --tune_from=scratch")

    def model(self, num_classes: int) -> Any:
        """The run's AlexNet (variant and compute dtype)."""
        from ftjax.models.alexnet import AlexNet  # noqa: PLC0415 (config stays jax-free)

        return AlexNet(num_classes=num_classes, variant=self.arch, dtype=self.dtype)

    @property
    def split(self) -> str:
        """Which cases of --data the application tests on (``ftjax.data.splits.SplitPlan``)."""
        if self.test_data:
            return "train"
        return f"fold={self.fold}/{self.folds}" if self.folds else ""

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
    def from_json(cls, text: str, source: str = "config") -> TrainConfig:
        """The config stored in a workdir; ``source`` (its path) names it in errors."""
        try:
            values = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{source}: not valid JSON ({e})") from e
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a JSON object of config fields, got "
                             f"{type(values).__name__}")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{source}: unknown config fields {unknown} (written by another "
                             "ftjax version?)")
        try:
            return cls(**values)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from e


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
