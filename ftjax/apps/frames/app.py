"""Application ``frames``: informative vs non-informative colonoscopy frames (PAPER.md, section 3).

    python -m ftjax.train --app=frames --tune_from=conv4                  # SYNTHETIC videos
    python -m ftjax.train --app=frames --data=folder:/data/frames --preset=paper

Videos (SYNTHETIC by default, or a ``folder`` data set: class folders ``informative/`` and
``non-informative/`` or a ``labels.csv``) are split by video. Whole-frame classification: each
frame is stored once (resized to the preset's frame size) and shown to the network as random
crops of the network's input size, never resized, cut on the device from seeded offsets (the
paper's 200 crops of 227 x 227 per frame would be about 60 GB stored at its scale). Training
patches are the training frames' crops; a frame's score is the mean informative probability
over its test crops. The metric is the ROC and its AUC with DeLong and video-bootstrap 95%
intervals, sensitivity at 10%, 15% and 20% false-positive rate, against two non-learned
baselines on the same frames (the variance of the Laplacian, a sharpness score; the exposure
score, the share of pixels neither black nor saturated), each compared with the network by
DeLong's paired test. The positive class is "informative".

Results on SYNTHETIC videos are a demonstration of the pipeline and never a medical finding:
every output of such a run says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from PIL import Image

from ftjax.apps.candidates import CandidateApp, CandidateSettings, from_preset
from ftjax.apps.colonoscopy.synthetic import exposure_score, laplacian_variance
from ftjax.apps.colonoscopy.videos import Clip, SyntheticVideos, VideoSource, frame_counts
from ftjax.apps.frames.presets import STUDY
from ftjax.apps.protocol import ArrayPatches, CandidateSource, TestResult
from ftjax.data.patch_dataset import CaseTable, DatasetSpec
from ftjax.metrics import compare_roc, roc_curve, sensitivity_at_fpr
from ftjax.patches.planar import crop_offsets, frame_crops
from ftjax.predictions import Predictions, headline

FPRS = STUDY["operating_points"]
SYNTHETIC_NOTE = ("SYNTHETIC colonoscopy videos (ftjax.apps.colonoscopy.synthetic): a "
                  "demonstration of the pipeline, not patients and not a medical finding")
INFO_FIELDS = {"frame": ((), "int32"), "laplacian": ((), "float32"),
               "exposure": ((), "float32")}
BASELINES = {"baseline: Laplacian variance": "baseline_laplacian",
             "baseline: exposure score": "baseline_exposure"}
_CROP_STREAMS = {"train": 11, "validation": 12, "test": 13}  # seeded offsets per split


@dataclasses.dataclass(frozen=True)
class FramesSettings(CandidateSettings):
    """What a preset sets beyond ``CandidateSettings`` (the frame fields are part of the data
    set's cache key; the crop fields are not: crops are cut when used).

    videos / frames_per_video: the SYNTHETIC videos. shape: (height, width) every frame is
    stored at (a data set's frames are resized to it). crop_size: side of the crops, the
    network's input (the trainer preset sets ``input_size`` to it; another input size resizes
    the crops). train_crops / validation_crops / test_crops: random crops per frame (paper: 200
    for training; a frame's score is the mean over its test crops).
    """

    videos: int = 6
    frames_per_video: int = 667
    shape: tuple[int, int] = (350, 500)
    crop_size: int = 227
    train_crops: int = 200
    validation_crops: int = 20
    test_crops: int = 200

    @property
    def patches_per_candidate(self) -> int:
        return 1  # the stored frame; its crops are cut when scored

    def check(self) -> None:
        super().check()
        for name in ("videos", "frames_per_video", "crop_size", "train_crops",
                     "validation_crops", "test_crops"):
            if getattr(self, name) < 1:
                raise ValueError(f"setting {name}={getattr(self, name)} must be >= 1")
        if len(self.shape) != 2 or min(self.shape) < 32:
            raise ValueError(f"setting shape={self.shape} must be (height, width), each >= 32")

    def crops(self, split: str) -> int:
        return {"train": self.train_crops, "validation": self.validation_crops,
                "test": self.test_crops}[split]


# [paper] 6 videos, one frame every 5 s, 4,000 frames of 500 x 350 split by video (about half in
# test), 200 random 227 x 227 crops per training frame, a frame scored by the mean over crops
# (200 [assumed]); validation frames by 20 crops each epoch [assumed]. Every training frame is
# kept (max_train_patches counts frames here; the trainer balances the classes per epoch).
PAPER = FramesSettings(test_fraction=0.5, max_train_patches=10_000_000)
# Minutes on a 2-core CPU: 84 SYNTHETIC videos of 8 frames at 144 x 192 (34 test videos, 272
# test frames; 40 training and 10 validation videos: enough that the paper's 10%, 5% and 1% of
# the training frames keep 4, 2 and 1 whole videos), 99-pixel crops, 8 per training frame, 4
# per validation frame, 16 per test frame.
SMOKE = dataclasses.replace(PAPER, videos=84, frames_per_video=8, shape=(144, 192),
                            test_fraction=0.4, max_cases=None, crop_size=99, train_crops=8,
                            validation_crops=4, test_crops=16)
PRESETS = {"smoke": SMOKE, "paper": PAPER}


class FrameCrops:
    """A PatchSource of random crops of frames held once on the device: patch ``i * n + j`` is
    crop ``j`` of frame ``i``, at offsets fixed by the seed."""

    def __init__(self, frames: ArrayPatches, crops: int, size: int, seed: Sequence[int]):
        n = len(frames)
        self.crops, self.size = crops, size
        self.frames = jax.device_put(frames.patches)
        self.offsets = crop_offsets(np.random.default_rng(list(seed)),
                                    frames.patches.shape[1:], size, n * crops)
        self.labels = np.repeat(frames.labels, crops)
        self.cases = np.repeat(frames.cases, crops)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: np.ndarray) -> jax.Array:
        index = np.asarray(index, np.int64)
        return frame_crops(self.frames, index // self.crops, self.offsets[index], self.size)


class FrameCandidates:
    """A CandidateSource of frames, each represented by ``crops`` random crops."""

    def __init__(self, stored: CandidateSource, crops: int, size: int, seed: Sequence[int]):
        self.stored, self.crops, self.size = stored, crops, size
        self.labels = stored.labels
        shape = stored.patches(np.zeros(0, np.int64)).shape[2:]  # the stored frame size
        self.offsets = crop_offsets(np.random.default_rng(list(seed)), shape, size,
                                    len(stored) * crops).reshape(len(stored), crops, 2)

    def __len__(self) -> int:
        return len(self.stored)

    def patches(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, np.int64)
        frames = self.stored.patches(index)[:, 0]
        which = np.repeat(np.arange(len(index)), self.crops)
        crops = frame_crops(frames, which, self.offsets[index].reshape(-1, 2), self.size)
        return np.asarray(crops).reshape(len(index), self.crops, self.size, self.size, -1)


def _resized(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == tuple(shape):
        return frame
    return np.asarray(Image.fromarray(frame).resize((shape[1], shape[0]), Image.BILINEAR))


class _Frames:
    """The PatchProducer of the frames data set: every frame a candidate, stored once."""

    def __init__(self, app: FramesApp, labelled: bool):
        self.app, self.labelled = app, labelled
        self._clip: Clip | None = None

    def clip(self, case: str) -> Clip:
        if self._clip is None or self._clip.case != case:
            self._clip = self.app.videos.clip(case, self.labelled)
        return self._clip

    def table(self, case: str) -> CaseTable:
        clip = self.clip(case)
        if self.labelled and clip.informative is None:
            raise ValueError(f"{case}: frames without informative / non-informative labels")
        frames = np.stack([_resized(f, self.app.settings.shape) for f in clip.frames])
        labels = clip.informative if self.labelled else np.zeros(len(clip), bool)
        info = {"frame": np.arange(len(clip), dtype=np.int32),
                "laplacian": laplacian_variance(frames), "exposure": exposure_score(frames)}
        meta = {"frames": len(clip), "frame_ids": list(clip.frame_ids),
                "informative": int(np.sum(labels))}
        return CaseTable(np.asarray(labels, np.int32), info, meta)

    def patches(self, case: str, candidates: np.ndarray) -> np.ndarray:
        clip, shape = self.clip(case), self.app.settings.shape
        return np.stack([_resized(clip.frames[t], shape) for t in candidates])[:, None]


class FramesApp(CandidateApp):
    """The frames application (``ftjax.apps.protocol.Application``)."""

    name = "frames"
    classes = ("non-informative", "informative")
    reduction_unit = "frames"
    DATASETS = ("folder",)
    INFO_FIELDS = INFO_FIELDS
    settings: FramesSettings

    def __init__(self, data: str = "synthetic", settings: FramesSettings = SMOKE,
                 data_seed: int = 0, val_fraction: float = 0.2, log: Any = print):
        super().__init__(data, settings, data_seed, val_fraction, log)
        self.videos = VideoSource(self.source, SyntheticVideos(
            settings.videos, settings.frames_per_video, settings.shape, informative_only=False),
            data_seed)
        if self.videos.split_by_image and log:
            log(f"frames: {self.source.root}: {self.videos.split_note}")

    def list_cases(self) -> list[str]:
        return self.videos.cases()

    def producer(self, labelled: bool = True) -> _Frames:
        return _Frames(self, labelled)

    def generation_params(self) -> dict[str, Any]:
        return {"shape": self.settings.shape, **self.videos.fingerprint_params()}

    def _make_spec(self) -> DatasetSpec:
        return dataclasses.replace(super()._make_spec(), patch_shape=(*self.settings.shape, 3))

    def units(self, cases: Sequence[str]) -> np.ndarray:
        """Frames per video: the paper reduces the training set to a share of its frames
        (whole videos removed)."""
        return frame_counts(self.videos, cases)

    @property
    def validation_metric(self) -> str:
        return (f"frame AUC (mean over {self.settings.validation_crops} random crops of each "
                "validation frame)")

    def training_patches(self, cases: Sequence[str]) -> FrameCrops:
        s = self.settings
        return FrameCrops(super().training_patches(cases), s.train_crops, s.crop_size,
                          (self.data_seed, _CROP_STREAMS["train"]))

    def scored(self, source: CandidateSource, split: str) -> FrameCandidates:
        s = self.settings
        return FrameCandidates(source, s.crops(split), s.crop_size,
                               (self.data_seed, _CROP_STREAMS[split]))

    @property
    def patches_per_scored_candidate(self) -> int:
        return self.settings.test_crops

    # ------------------------------------------------------------------ the paper's metric
    def test_result(self, index: Mapping[str, np.ndarray], probabilities: np.ndarray,
                    outdir: Path) -> TestResult:
        """ROC of the network and the two baselines on the test frames: AUC with DeLong and
        video-bootstrap intervals, sensitivity at 10/15/20% FPR, paired DeLong tests."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (len(index["case"]), len(self.classes)):
            raise ValueError(f"probabilities of shape {probs.shape}; expected "
                             f"({len(index['case'])}, {len(self.classes)})")
        ids = np.array([self.case_facts(c)["frame_ids"][t]
                        for c, t in zip(index["case"], index["frame"], strict=True)], dtype=str)
        predictions = Predictions(
            app=self.name, synthetic=self.synthetic,
            metric={"kind": "roc", "name": "AUC (informative vs non-informative frames)",
                    "operating_points": list(FPRS)},
            columns={"case": index["case"], "cluster": index["case"], "item": ids,
                     "truth": index["label"], "score": probs[:, 1],
                     "baseline_laplacian": index["laplacian"],
                     "baseline_exposure": index["exposure"]},
            cases={c: {"cluster": c} for c in self.cases("test")},
            descriptions={"baseline_laplacian": "variance of the Laplacian (sharpness)",
                          "baseline_exposure": "share of pixels neither black nor saturated"})
        truth = predictions.columns["truth"] != 0
        summary: dict[str, Any] = {
            "data": SYNTHETIC_NOTE if self.synthetic
            else f"{self.source.kind} at {self.source.root}",
            "split": self.videos.split_note, "num_test_videos": len(self.cases("test")),
            "num_test_frames": len(truth), "informative": int(truth.sum()),
            "crops_per_frame_scored": self.settings.test_crops, "fpr": list(FPRS),
        }
        if truth.all() or not truth.any():
            summary["roc_note"] = "the test frames hold one class only: no ROC"
            return TestResult(headline(predictions), predictions, summary)
        scores = {"network": predictions.columns["score"]} | {
            name: predictions.columns[col] for name, col in BASELINES.items()}
        pairs = compare_roc(truth, scores, FPRS, clusters=predictions.columns["cluster"],
                            n_boot=self.settings.n_boot, seed=self.data_seed)
        boots = {}
        for (a, b), p in pairs.items():
            boots[a], boots[b] = p.bootstrap.a, p.bootstrap.b
        curves = {name: roc_curve(truth, s) for name, s in scores.items()}
        summary["roc"] = {
            name: {"auc": boots[name].summary, "auc_bootstrap_low": boots[name].summary_low,
                   "auc_bootstrap_high": boots[name].summary_high,
                   "sensitivity": sensitivity_at_fpr(curves[name], FPRS).tolist(),
                   "sensitivity_low": boots[name].low.tolist(),
                   "sensitivity_high": boots[name].high.tolist()}
            for name in scores}
        head = headline(predictions)
        summary["roc"]["network"] |= {"auc_delong_low": head.low, "auc_delong_high": head.high}
        summary["network_vs_baselines"] = {
            b: {"auc_difference": p.delong.difference, "delong_p_value": p.delong.p_value}
            for (a, b), p in pairs.items() if a == "network"}
        from ftjax.metrics.plots import plot_roc  # noqa: PLC0415 (matplotlib on demand)

        title = "frames" + (" (SYNTHETIC data)" if self.synthetic else f" ({self.source.kind})")
        summary["figure"] = str(plot_roc(curves, outdir, bands=boots, title=title))
        return TestResult(head, predictions, summary)

    # ------------------------------------------------------------------ new cases
    def describe(self, table: CaseTable) -> dict[str, np.ndarray]:
        ids = np.asarray(table.meta["frame_ids"])
        return {"frame": ids[np.asarray(table.info["frame"], np.int64)],
                "laplacian": np.asarray(table.info["laplacian"]),
                "exposure": np.asarray(table.info["exposure"])}

    def plot_case(self, case: str, table: CaseTable, scores: np.ndarray, path: Path) -> None:
        """Up to 8 frames of the video, evenly spaced, titled with their informative score."""
        from matplotlib.figure import Figure  # noqa: PLC0415 (matplotlib on demand)

        clip = self.videos.clip(case, labelled=False)
        shown = np.unique(np.linspace(0, len(clip) - 1, min(8, len(clip))).astype(int))
        fig = Figure(figsize=(2.2 * len(shown), 2.3))
        for ax, t in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown, strict=True):
            ax.imshow(clip.frames[t])
            ax.set_title(f"{clip.frame_ids[t]}\ninformative {scores[t]:.2f}", fontsize=6)
            ax.set_axis_off()
        tag = " (SYNTHETIC)" if self.synthetic else ""
        fig.suptitle(f"{case}{tag}: {len(clip)} frames", fontsize=8)
        fig.savefig(path, dpi=90)


def make(data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
         val_fraction: float = 0.2, options: str = "",
         split: str = "") -> FramesApp:
    """The registry's factory: ``--app=frames --data=... --preset=... --data_seed=...
    --app_options=NAME=VALUE,...``."""
    return from_preset(FramesApp, PRESETS, data, preset, data_seed, val_fraction, options,
                       split)
