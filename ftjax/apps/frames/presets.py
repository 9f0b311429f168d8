"""The frames application's trainer presets and study facts: plain data, read by the trainer and
the study harness without importing the application (PAPER.md, section 3).

The crops are cut at the network's input size, never resized, so each preset's ``input_size``
is its crop side (the paper's 227 on the Caffe network; smoke [assumed] 99 on the torchvision
AlexNet, 3-5x cheaper per crop on a CPU so that a run from scratch or fine-tuned stays under 5
minutes on 2 cores: its adaptive pooling lets the ImageNet fc6 take any input size, which the
Caffe network's does not). Batch 8 as for ``pe``, 3 epochs (torchvision's full-size fc6
makes a batch-8 step cost as much as 8 more crops: 34 crops/s) and a base learning rate of
0.003 [assumed] instead of the paper's 0.001: at 0.001 the smoke run's few hundred SGD steps
left a scratch network's training loss at chance (0.69; test AUC 0.60), at 0.003 it fell to
0.36 (test AUC 0.74).
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 3, "input_size": 99, "arch": "torchvision",
                   "base_lr": 0.003},
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
    # [paper] frames peak at mid depth: conv4/conv5 best.
    "paper_depth": "mid",
    "paper_numbers": {},
}
