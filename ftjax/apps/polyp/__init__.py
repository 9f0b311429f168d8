"""Application ``polyp``: polyp detection in colonoscopy video (PAPER.md, section 1).

A shape-based candidate detector in the spirit of the paper's (``detector``: edges, then voting
for the convex, elliptical boundaries typical of polyps) proposes points with bounding boxes in
every frame; the CNN rescores them and the result is an FROC per frame (``app``; its trainer
presets and study facts in ``presets``). The frames come from ``ftjax.apps.colonoscopy``.
"""
