"""Application ``polyp``: polyp detection in colonoscopy video (PAPER.md, section 1).

    python -m ftjax.train --app=polyp --tune_from=conv1                  # SYNTHETIC videos
    python -m ftjax.train --app=polyp --data=cvc-clinicdb:/data/CVC-ClinicDB --preset=paper

Videos (SYNTHETIC by default, or a public data set on disk) are split by video (by image where
the data set does not say which video a frame comes from, and the output says so). The shape
detector (``ftjax.apps.polyp.detector``: edges, then votes for convex elliptical boundaries)
gives each frame up to N candidates, each a point and a box; a candidate is positive when its
point lies in a polyp mask. Each candidate is shown as 120 patches (``ftjax.patches.planar``: box
x1.0, x1.2, x1.5 x centre and +-10% shifts x the 8 dihedral variants), cut on the device and
stored at a compact size; the network input is resized on the device. A candidate's score is
the mean over its patches. The metric is the FROC per frame (sensitivity per polyp seen in a
frame, several hits on one polyp counting once, against false positives per frame, log axis),
at 0.001, 0.01 and 0.1 FP/frame with bootstrap 95% intervals resampled by video, against the
detector's own vote score on the same candidates. A rate is reported only where the test frames
can hold one false positive at it (1,000 frames for 0.001 FP/frame); below, "not estimable".

Results on SYNTHETIC videos are a demonstration of the pipeline and never a medical finding:
every output of such a run says so.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ftjax.apps.candidates import CandidateApp, CandidateSettings, from_preset
from ftjax.apps.colonoscopy import readers
from ftjax.apps.colonoscopy.videos import Clip, SyntheticVideos, VideoSource
from ftjax.apps.polyp.detector import DetectorConfig, detect, pixels
from ftjax.apps.polyp.presets import STUDY
from ftjax.apps.protocol import TestResult
from ftjax.data.patch_dataset import CaseTable
from ftjax.metrics import compare_froc, estimable, froc_from_cases
from ftjax.patches.planar import N_VARIANTS, POSITIONS, augmentation_index, candidate_patches
from ftjax.predictions import Predictions, froc_hits, headline

FP_RATES = STUDY["operating_points"]  # false positives per frame
SYNTHETIC_NOTE = ("SYNTHETIC colonoscopy videos (ftjax.apps.colonoscopy.synthetic): a "
                  "demonstration of the pipeline, not patients and not a medical finding")
DATASETS = ("cvc-clinicdb", "etis-larib", "kvasir-seg", "asu-mayo")
INFO_FIELDS = {"frame": ((), "int32"), "centre": ((2,), "float32"), "box": ((2,), "float32"),
               "vote": ((), "float32"), "polyp": ((), "int32")}


@dataclasses.dataclass(frozen=True)
class PolypSettings(CandidateSettings):
    """What a preset sets beyond ``CandidateSettings`` (all but the scoring fields are part of
    the data set's cache key).

    videos / frames_per_video / shape: the SYNTHETIC videos. detector: the candidate detector
    (its ``max_candidates`` is the paper's N per frame). scales / shift: the patch grid (paper:
    3 scales x 5 positions x 8 dihedral variants = 120).
    """

    videos: int = 40
    frames_per_video: int = 240
    shape: tuple[int, int] = (288, 384)
    detector: DetectorConfig = DetectorConfig()
    scales: tuple[float, ...] = (1.0, 1.2, 1.5)
    shift: float = 0.1

    @property
    def patches_per_candidate(self) -> int:
        return len(self.scales) * len(POSITIONS) * N_VARIANTS

    def check(self) -> None:
        super().check()
        if self.videos < 3 or self.frames_per_video < 1:
            raise ValueError(f"settings videos={self.videos}, frames_per_video="
                             f"{self.frames_per_video}: need >= 3 videos of >= 1 frame")
        if len(self.shape) != 2 or min(self.shape) < 32:
            raise ValueError(f"setting shape={self.shape} must be (height, width), each >= 32")
        if not self.scales or min(self.scales) <= 0 or not np.isfinite(self.shift):
            raise ValueError(f"settings scales={self.scales}, shift={self.shift}: need positive "
                             "scales and a finite shift")

    def centred(self, variants: Sequence[int]) -> tuple[int, ...]:
        """Every scale, the centred position, the given dihedral variants."""
        return tuple(augmentation_index(s, 0, v, len(self.scales))
                     for s in range(len(self.scales)) for v in variants)


# [paper] 40 videos split by video, half the frames in test, 100,000 stratified training
# patches, every test candidate scored by all 120 patches. [assumed] 240 frames per SYNTHETIC
# video (the paper's 38,000 frames would take the detector hours on a CPU), 10 candidates per
# frame, patches stored at 32 px; validation candidates scored each epoch by the 6 centred
# patches of the 3 scales at 0 and 180 degrees.
_BASE = PolypSettings(test_fraction=0.5, max_train_patches=100_000)
PAPER = dataclasses.replace(_BASE, validation_augmentations=_BASE.centred((0, 4)))
# Minutes on a 2-core CPU: 48 SYNTHETIC videos of 16 frames at 144 x 192 (19 test videos, 304
# test frames; 23 training and 6 validation videos: many short videos, since what a network
# learns polyps from is the number of distinct polyps), the detector scaled to the half-size frames
# with 6 candidates per frame, 2,000 training patches drawn from all 120 augmentations, and 6
# of the 120 patches scored per validation and test candidate (every scale, centred, at 0 and
# 180 degrees), since scoring costs one network pass per patch.
SMOKE = dataclasses.replace(
    PAPER, videos=48, frames_per_video=16, shape=(144, 192), test_fraction=0.4, max_cases=48,
    max_train_patches=2000, score_augmentations=_BASE.centred((0, 4)),
    detector=DetectorConfig(sigma=1.0, radii=(3.0, 30.0), nms_distance=6.0, evidence_radius=5.0,
                            max_candidates=6))
PRESETS = {"smoke": SMOKE, "paper": PAPER}


class _Candidates:
    """The PatchProducer of the polyp data set: detections per frame, then their 120 patches."""

    def __init__(self, app: PolypApp, labelled: bool):
        self.app, self.labelled = app, labelled
        self.found: dict[str, dict[str, np.ndarray]] = {}
        self._clip: Clip | None = None

    def clip(self, case: str) -> Clip:
        if self._clip is None or self._clip.case != case:  # cases are cut one after another
            self._clip = self.app.videos.clip(case, self.labelled)
        return self._clip

    def table(self, case: str) -> CaseTable:
        clip, config = self.clip(case), self.app.settings.detector
        # numpy and scipy release the GIL in the detector's heavy steps: about 1.8x on 2 cores.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            detections = list(pool.map(lambda frame: detect(frame, config), clip.frames))
        parts = []
        for t, (frame, found) in enumerate(zip(clip.frames, detections, strict=True)):
            polyp = (clip.polyps[t][pixels(found.centres, frame.shape)] if clip.polyps
                     else np.zeros(len(found), np.int32))
            parts.append((np.full(len(found), t), found.centres, found.boxes, found.scores,
                          polyp))
        frame, centre, box, vote, polyp = (np.concatenate(p) for p in zip(*parts, strict=True))
        info = {"frame": frame.astype(np.int32), "centre": centre.reshape(-1, 2),
                "box": box.reshape(-1, 2), "vote": vote, "polyp": polyp.astype(np.int32)}
        self.found[case] = info
        counts = [clip.polyp_count(t) for t in range(len(clip))]
        meta = {"frames": len(clip), "frame_ids": list(clip.frame_ids),
                "polyps_per_frame": counts, "shape": list(clip.frames[0].shape[:2])}
        return CaseTable((info["polyp"] > 0).astype(np.int32), info, meta)

    def patches(self, case: str, candidates: np.ndarray) -> np.ndarray:
        clip, s, info = self.clip(case), self.app.settings, self.found[case]
        out = np.empty((len(candidates), s.patches_per_candidate, s.patch_size, s.patch_size, 3),
                       np.uint8)
        pad = max(1, s.detector.max_candidates)  # one compiled cutter per frame size
        for t in np.unique(info["frame"][candidates]):
            rows = np.flatnonzero(info["frame"][candidates] == t)
            for lo in range(0, len(rows), pad):
                part = rows[lo:lo + pad]
                chosen = candidates[np.r_[part, np.repeat(part[-1:], pad - len(part))]]
                cut = candidate_patches(clip.frames[t], info["centre"][chosen],
                                        info["box"][chosen], scales=s.scales, shift=s.shift,
                                        patch_size=s.patch_size)
                out[part] = np.asarray(cut)[:len(part)]
        return out


class PolypApp(CandidateApp):
    """The polyp application (``ftjax.apps.protocol.Application``)."""

    name = "polyp"
    classes = ("background", "polyp")
    reduction_unit = "videos"
    DATASETS = DATASETS
    INFO_FIELDS = INFO_FIELDS
    settings: PolypSettings

    def __init__(self, data: str = "synthetic", settings: PolypSettings = SMOKE,
                 data_seed: int = 0, val_fraction: float = 0.2, log: Any = print):
        super().__init__(data, settings, data_seed, val_fraction, log)
        self.videos = VideoSource(self.source, SyntheticVideos(
            settings.videos, settings.frames_per_video, settings.shape, informative_only=True),
            data_seed)
        if self.videos.split_by_image and log:
            log(f"polyp: {self.source.root}: {readers.SPLIT_BY_IMAGE}")

    def list_cases(self) -> list[str]:
        return self.videos.cases()

    def producer(self, labelled: bool = True) -> _Candidates:
        return _Candidates(self, labelled)

    def generation_params(self) -> dict[str, Any]:
        s = self.settings
        return {"detector": dataclasses.asdict(s.detector), "scales": s.scales,
                "shift": s.shift, **self.videos.fingerprint_params()}

    def units(self, cases: Sequence[str]) -> np.ndarray:
        """One per video: the paper reduces the polyp training set by whole videos."""
        return np.ones(len(cases), np.float64)

    # ------------------------------------------------------------------ the paper's metric
    def predictions(self, index: Mapping[str, np.ndarray], scores: np.ndarray) -> Predictions:
        """Per candidate of the test videos, each test frame a FROC case clustered by video."""
        videos = self.cases("test")
        frame_case, cases = [], {}
        for video in videos:
            facts = self.case_facts(video)
            for frame_id, n in zip(facts["frame_ids"], facts["polyps_per_frame"], strict=True):
                cases[frame_id] = {"cluster": video, "lesions": int(n)}
            ids = np.asarray(facts["frame_ids"])
            frame_case.append(ids[index["frame"][index["case"] == video]])
        order = np.concatenate([np.flatnonzero(index["case"] == v) for v in videos])
        centre, box = index["centre"][order], index["box"][order]
        metric = {"kind": "froc", "name": f"sensitivity at {STUDY['headline_at']:g} FP/frame",
                  "per": "frame", "at": STUDY["headline_at"], "operating_points": list(FP_RATES),
                  "n_boot": self.settings.n_boot, "seed": self.data_seed}
        return Predictions(
            app=self.name, synthetic=self.synthetic, metric=metric,
            columns={"case": np.concatenate(frame_case) if frame_case else np.zeros(0, str),
                     "cluster": index["case"][order],
                     "item": index["candidate"][order].astype(str),
                     "truth": index["label"][order], "score": scores[order],
                     "lesion": np.where(index["polyp"][order] > 0, index["polyp"][order], -1),
                     "y": centre[:, 0], "x": centre[:, 1], "height": box[:, 0],
                     "width": box[:, 1], "baseline_vote": index["vote"][order]},
            cases=cases,
            descriptions={"y": "candidate point, pixels (y, x)", "x": "",
                          "height": "candidate box, pixels", "width": "",
                          "baseline_vote": "the detector's own vote score"})

    def test_result(self, index: Mapping[str, np.ndarray], probabilities: np.ndarray,
                    outdir: Path) -> TestResult:
        """FROC per frame of the network and of the detector's vote score, paired bootstrap
        over videos, the estimable operating points only; writes the log-axis figure."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (len(index["case"]), len(self.classes)):
            raise ValueError(f"probabilities of shape {probs.shape}; expected "
                             f"({len(index['case'])}, {len(self.classes)})")
        predictions = self.predictions(index, probs[:, 1])
        frames = len(predictions.cases)
        polyps = sum(c["lesions"] for c in predictions.cases.values())
        hit = len({(c, lesion) for c, lesion in zip(predictions.columns["case"],
                                                    predictions.columns["lesion"], strict=True)
                   if lesion > 0})
        ok = estimable(FP_RATES, frames)
        summary: dict[str, Any] = {
            "data": SYNTHETIC_NOTE if self.synthetic
            else f"{self.source.kind} at {self.source.root}",
            "split": self.videos.split_note, "num_test_videos": len(self.cases("test")),
            "num_test_frames": frames, "num_polyps_in_frames": polyps,
            "detector": {"sensitivity": hit / polyps if polyps else None,
                         "candidates_per_frame": len(predictions) / frames,
                         "true_candidates": int(np.sum(predictions.columns["truth"] > 0))},
            "fp_per_frame": list(FP_RATES),
            "estimable": ok.tolist(),
            "estimable_rule": "a rate r needs r x test frames >= 1 (room for one false "
                              "positive); below, the curve is an interpolation from (0, 0)",
            "patches_per_candidate_scored": self.patches_per_scored_candidate,
        }
        if polyps == 0:
            summary |= {"froc": None, "froc_note": "no polyp in the test frames: sensitivity "
                        "is undefined (more videos, or another --data_seed)"}
            return TestResult(headline(predictions), predictions, summary)
        scorers = {"network": "score", "baseline: detector vote": "baseline_vote"}
        hits = {name: froc_hits(predictions.with_score(col)) for name, col in scorers.items()}
        clusters = [c["cluster"] for c in predictions.cases.values()]
        (pair,) = compare_froc(hits, FP_RATES, clusters=clusters, n_boot=self.settings.n_boot,
                               seed=self.data_seed).values()

        def only(values: np.ndarray) -> list[float | None]:
            return [float(v) if e else None for v, e in zip(values, ok, strict=True)]

        summary["froc"] = {name: {"sensitivity": only(b.estimate), "low": only(b.low),
                                  "high": only(b.high)}
                           for name, b in (("network", pair.a),
                                           ("baseline: detector vote", pair.b))}
        summary["network_minus_baseline"] = {"diff": only(pair.diff), "low": only(pair.diff_low),
                                             "high": only(pair.diff_high),
                                             "p_value": only(pair.p_value)}
        from ftjax.metrics.plots import plot_froc  # noqa: PLC0415 (matplotlib on demand)

        title = "polyp" + (" (SYNTHETIC data)" if self.synthetic else f" ({self.source.kind})")
        figure = STUDY["figure"]
        summary["figure"] = str(plot_froc(
            {name: froc_from_cases(h) for name, h in hits.items()}, outdir,
            bands={"network": pair.a, "baseline: detector vote": pair.b}, per="frame",
            log_x=figure["log_x"], x_limits=figure["x_limits"], title=title))
        return TestResult(headline(predictions), predictions, summary)

    # ------------------------------------------------------------------ new cases
    def describe(self, table: CaseTable) -> dict[str, np.ndarray]:
        centre, box = (np.asarray(table.info[k]).reshape(-1, 2) for k in ("centre", "box"))
        ids = np.asarray(table.meta["frame_ids"])
        return {"frame": ids[np.asarray(table.info["frame"], np.int64)], "y": centre[:, 0],
                "x": centre[:, 1], "height": box[:, 0], "width": box[:, 1],
                "vote": np.asarray(table.info["vote"])}

    def plot_case(self, case: str, table: CaseTable, scores: np.ndarray, path: Path) -> None:
        """The (up to) four frames holding the best-scored candidates, every candidate's box
        drawn and coloured by its score."""
        from matplotlib.figure import Figure  # noqa: PLC0415 (matplotlib on demand)
        from matplotlib.patches import Rectangle  # noqa: PLC0415

        clip = self.videos.clip(case, labelled=False)
        frame_of = np.asarray(table.info["frame"], np.int64)
        best = [] if not len(scores) else list(dict.fromkeys(frame_of[np.argsort(-scores)]))[:4]
        shown = best or [0]
        fig = Figure(figsize=(3.2 * len(shown), 3.0))
        for ax, t in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown, strict=True):
            ax.imshow(clip.frames[t])
            for j in np.flatnonzero(frame_of == t):
                (cy, cx), (h, w) = table.info["centre"][j], table.info["box"][j]
                colour = (1.0, 1.0 - float(scores[j]), 0.0)
                ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, lw=1.2,
                                       edgecolor=colour))
                ax.text(cx - w / 2, cy - h / 2, f"{scores[j]:.2f}", color=colour, fontsize=6)
            ax.set_title(clip.frame_ids[t], fontsize=7)
            ax.set_axis_off()
        tag = " (SYNTHETIC)" if self.synthetic else ""
        fig.suptitle(f"{case}{tag}: {len(scores)} candidates in {len(clip)} frames", fontsize=9)
        fig.savefig(path, dpi=90)


def make(data: str = "synthetic", preset: str = "smoke", data_seed: int = 0,
         val_fraction: float = 0.2, options: str = "",
         split: str = "") -> PolypApp:
    """The registry's factory: ``--app=polyp --data=... --preset=... --data_seed=...
    --app_options=NAME=VALUE,...``."""
    return from_preset(PolypApp, PRESETS, data, preset, data_seed, val_fraction, options,
                       split)
