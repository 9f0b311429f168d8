"""The frames application's trainer presets and study facts: plain data, read by the trainer and
the study harness without importing the application (PAPER.md, section 3).

The crops are cut at the network's input size, never resized, so each preset's ``input_size``
is its crop side (the paper's 227; smoke 99 [assumed], about 5x cheaper per crop on a CPU so
that a run stays under 5 minutes on 2 cores). Batch 8 as for ``pe``.
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 3, "input_size": 99},
         "paper": {"input_size": 227, "eval_chunk": 2}}

STUDY = {
    # [paper] deep tuning and scratch at 10%, 5% and 1% of the training frames (whole videos
    # removed: the fraction reached is reported).
    "reduced_fractions": (0.1, 0.05, 0.01),
    "reduced_configs": ("conv1", "scratch"),
    "reduction_unit": "frames",
    # [paper] ROC, compared at false-positive rates 10%, 15% and 20%.
    "metric": "roc",
    "operating_points": (0.10, 0.15, 0.20),
    "figure": {"kind": "roc"},
    "paper_numbers": {},
}
