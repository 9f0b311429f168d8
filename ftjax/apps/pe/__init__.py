"""Application ``pe``: pulmonary embolism detection in CT pulmonary angiography (PAPER.md, 2).

``app`` (the application), ``presets`` (its trainer presets and study facts, data only), and what
only PE needs: ``ct`` (the scan type), ``synthetic`` (SYNTHETIC CTPA volumes), ``readers`` (CAD-PE,
FUMPE), ``toboggan`` (the candidate generator), ``vessel`` (vessel-aligned patches).
"""
