"""The polyp application's trainer presets and study facts: plain data, read by the trainer and
the study harness without importing the application (PAPER.md, section 1).

TRAIN[preset] overrides the trainer's preset (the command line still overrides both). Smoke: a
99-pixel network input [assumed] instead of 227 (about 5x cheaper per patch on a CPU, so that a
run from scratch or fine-tuned stays under 5 minutes on 2 cores; the stored patches are 32 px
either way), batch 8 as for ``pe`` (enough SGD steps at the paper's learning rate).
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 3, "input_size": 99},
         "paper": {"eval_chunk": 4}}

STUDY = {
    # [paper] deep tuning and scratch with 50% and 25% of the training videos.
    "reduced_fractions": (0.5, 0.25),
    "reduced_configs": ("conv1", "scratch"),
    "reduction_unit": "videos",
    # [paper] FROC per frame on a log axis (1e-4..10), compared at 0.001 and 0.01 FP/frame;
    # 0.1 added [assumed] so that small test sets have an estimable point.
    "metric": "froc",
    "operating_points": (0.001, 0.01, 0.1),
    "headline_at": 0.01,
    "figure": {"kind": "froc", "per": "frame", "log_x": True, "x_limits": (1e-4, 10.0)},
    "paper_numbers": {},
}
