"""The PE application's trainer presets and study facts: plain data, read by the trainer and the
study harness without importing the application (PAPER.md, section 2).

TRAIN[preset] overrides the trainer's preset (the command line still overrides both). Smoke:
batch 8 [assumed; the paper reports no batch size] gives the ~300 SGD steps a 5-minute CPU run can
afford at the paper's learning rate; at batch 32 a scratch network stayed at chance (validation
AUC 0.44) and at batch 8 it reaches 0.9. Paper: 8 candidates x 54 patches per scoring call keeps
the activations near 1.5 GB.
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 2}, "paper": {"eval_chunk": 8}}

STUDY = {
    # [paper] deep tuning (conv1) and scratch repeated with 50% and 25% of the training PEs,
    # removing whole patients.
    "reduced_fractions": (0.5, 0.25),
    "reduced_configs": ("conv1", "scratch"),
    "reduction_unit": "PEs",
    # [paper] FROC per volume, compared at 1..5 false positives per volume; x axis 0..10.
    "metric": "froc",
    "operating_points": (1.0, 2.0, 3.0, 4.0, 5.0),
    "headline_at": 2.0,
    "figure": {"kind": "froc", "per": "volume", "x_limits": (0.0, 10.0)},
    # The paper's own figures, for context only (private data: not comparable with ours).
    # [paper] PE saturates after the fc layers: fc7 beats fc8 alone, deeper layers add little.
    "paper_depth": "shallow",
    "paper_numbers": {"miccai2015_sensitivity_at_2fp": 0.83},
}
