"""The cases of the colonoscopy applications (``polyp``, ``frames``): videos, SYNTHETIC or read
from a public data set folder.

A case is what a split never cuts: a video. Data sets that do not say which video a frame comes
from (CVC-ClinicDB without a sequence CSV, ETIS-Larib, Kvasir-SEG) make every image its own case:
the split is then by image, and the applications say so in their output (consecutive frames of
one video on both sides of a split would flatter every result).

CVC-ClinicDB's 31 sequences are not in its download: put a ``frame,sequence`` CSV at
``ROOT/sequences.csv`` (frame = file stem) and the split is by sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ftjax.apps.candidates import DataSource
from ftjax.apps.colonoscopy import readers
from ftjax.apps.colonoscopy.synthetic import synthetic_video

SEEDS_PER_DATA_SEED = 100_000  # synthetic video i of data seed s is synthetic_video(s * this + i)
SEQUENCES_CSV = "sequences.csv"  # optional, beside a cvc-clinicdb folder


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    """One case's frames as both applications see them.

    ``frames``: uint8 RGB [H, W, 3] each (images of one data set may differ in size).
    ``polyps``: per frame int32 [H, W], the polyp (1..n) seen at each pixel, 0 elsewhere (a
    SYNTHETIC video's instance ids; a data set's binary mask split into connected components,
    one polyp each); None without masks. ``informative``: the frames app's label per frame, or
    None where the data set has none.
    """

    case: str
    frame_ids: tuple[str, ...]
    frames: tuple[np.ndarray, ...]
    polyps: tuple[np.ndarray, ...] | None = None
    informative: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def polyp_count(self, i: int) -> int:
        """Polyps seen in frame ``i`` (the FROC's lesions of that frame)."""
        return 0 if self.polyps is None else int(np.unique(self.polyps[i][self.polyps[i] > 0]).size)


@dataclasses.dataclass(frozen=True)
class SyntheticVideos:
    """How many SYNTHETIC videos, of what length and frame size (part of a cache key)."""

    videos: int
    frames_per_video: int
    shape: tuple[int, int]
    informative_only: bool  # True: no degraded frames (the polyp app's videos)


class VideoSource:
    """Cases and their clips from ``synthetic`` or a reader's ``DATASET:DIR``."""

    def __init__(self, source: DataSource, synthetic: SyntheticVideos, data_seed: int = 0):
        self.source, self.settings, self.data_seed = source, synthetic, data_seed
        self._records: dict[str, list[readers.FrameRecord]] | None = None
        self.split_by_image = False
        if not source.synthetic:
            sequences = source.root / SEQUENCES_CSV
            listed = readers.list_frames(
                source.kind, source.root,
                sequences if source.kind == "cvc-clinicdb" and sequences.is_file() else None)
            self.split_by_image = readers.split_by_image(listed)
            self._records = {}
            for r in listed:  # a frame without a video is a case of its own
                self._records.setdefault(r.video if r.video is not None else r.frame_id,
                                         []).append(r)

    @property
    def split_note(self) -> str:
        """How the cases were formed, for every output."""
        if self.source.synthetic:
            return "split by video (SYNTHETIC videos)"
        return readers.SPLIT_BY_IMAGE if self.split_by_image else "split by video"

    def cases(self) -> list[str]:
        if self._records is None:
            return [f"synthetic-{i:05d}" for i in range(self.settings.videos)]
        return list(self._records)

    def records(self, case: str) -> list[readers.FrameRecord]:
        if self._records is None or case not in self._records:
            raise ValueError(f"unknown case {case!r} of {self.source.root}")
        return self._records[case]

    def clip(self, case: str, labelled: bool = True) -> Clip:
        """The frames of one case (SYNTHETIC videos are regenerated from their seed);
        ``labelled=False`` reads no mask (new cases, no reference)."""
        if self._records is None:
            return self._synthetic(case, labelled)
        records = self.records(case)
        frames, polyps = [], []
        for r in records:
            rgb, mask = readers.load_frame(r if labelled else dataclasses.replace(r, mask=None))
            frames.append(rgb)
            if mask is not None:
                polyps.append(ndimage.label(mask, structure=np.ones((3, 3)))[0].astype(np.int32))
        informative = [r.informative for r in records]
        return Clip(case, tuple(r.frame_id for r in records), tuple(frames),
                    tuple(polyps) if polyps and labelled else None,
                    None if None in informative or not labelled else np.array(informative))

    def _synthetic(self, case: str, labelled: bool) -> Clip:
        s = self.settings
        name, _, number = case.partition("-")
        if name != "synthetic" or not number.isdigit() or int(number) >= s.videos:
            raise ValueError(f"unknown synthetic case {case!r}")
        video = synthetic_video(self.data_seed * SEEDS_PER_DATA_SEED + int(number),
                                n_frames=s.frames_per_video, shape=s.shape,
                                informative_only=s.informative_only)
        return Clip(case, tuple(f"{case}/{t:04d}" for t in range(len(video.frames))),
                    tuple(video.frames), tuple(video.masks.astype(np.int32)) if labelled else None,
                    video.informative.copy() if labelled else None)

    def fingerprint_params(self) -> dict:
        """What the cases depend on beyond the data source's files (part of a cache key)."""
        if self.source.synthetic:
            return {"synthetic": dataclasses.asdict(self.settings)}
        return {"readers": readers.FORMAT_VERSION, "split_by_image": self.split_by_image}


def frame_counts(source: VideoSource, cases: Sequence[str]) -> np.ndarray:
    """Frames per case without decoding any (SYNTHETIC videos all have the same length)."""
    if source.source.synthetic:
        return np.full(len(cases), source.settings.frames_per_video, np.float64)
    return np.array([len(source.records(c)) for c in cases], np.float64)


