"""Patch samplers: vessel-aligned multi-planar patches for PE candidates (`vessel`)."""

from ftjax.patches.vessel import perpendicular_basis, vessel_axes, vessel_patches

__all__ = ["perpendicular_basis", "vessel_axes", "vessel_patches"]
