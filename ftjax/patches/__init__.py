"""Patch extraction shared by the applications; `planar` holds the 2-D (colonoscopy) cutters."""

from ftjax.patches.planar import (
    POSITIONS,
    Augmentations,
    augmentation_grid,
    augmentation_index,
    candidate_patches,
    crop_offsets,
    frame_crops,
    random_crops,
)

__all__ = [
    "POSITIONS",
    "Augmentations",
    "augmentation_grid",
    "augmentation_index",
    "candidate_patches",
    "crop_offsets",
    "frame_crops",
    "random_crops",
]
