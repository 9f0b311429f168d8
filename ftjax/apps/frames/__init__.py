"""Application ``frames``: informative vs non-informative colonoscopy frames (PAPER.md, section
3): whole frames scored by the mean over random crops, ROC/AUC (``app``; its trainer presets and
study facts in ``presets``). The frames come from ``ftjax.apps.colonoscopy``.
"""
