"""The PE application's trainer presets and study facts: data, read by the trainer and the study
harness without importing the application (PAPER.md, section 2).

TRAIN[preset] overrides the trainer's preset (the command line still overrides both). Smoke:
batch 8 [assumed; the paper reports no batch size] gives the ~250 SGD steps a 5-minute CPU run can
afford at the paper's learning rate; at batch 32 (93 steps) a scratch network stayed at chance
(validation AUC 0.44) and at batch 8 it reaches 0.90. Paper: 8 candidates x 54 patches per
scoring call keeps the activations near 1.5 GB.
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 2}, "paper": {"eval_chunk": 8}}
