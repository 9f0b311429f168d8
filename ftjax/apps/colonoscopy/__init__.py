"""Colonoscopy data shared by the applications ``polyp`` and ``frames`` (PAPER.md, 1 and 3).

Both applications work on frames of colonoscopy video and split by video. This package holds what
they share: ``synthetic``, seeded SYNTHETIC colonoscopy videos (frames, polyp masks, frame
informativeness labels and degradations) that each application uses by default, with the
non-learned frame-quality baselines that check those data are not too easy, and ``readers`` for
the public datasets a user can bring instead.
"""
