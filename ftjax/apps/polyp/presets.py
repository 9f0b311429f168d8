"""The polyp application's trainer presets and study facts: plain data, read by the trainer and
the study harness without importing the application (PAPER.md, section 1).

TRAIN[preset] overrides the trainer's preset (the command line still overrides both). Smoke
[assumed]: a 99-pixel network input instead of 227 (3-5x cheaper per patch on a CPU, so that a
run from scratch or fine-tuned stays under 5 minutes on 2 cores; the stored patches are 32 px
either way) on the torchvision AlexNet, whose adaptive pooling lets its ImageNet fc6 take any
input size (the Caffe network's pretrained fc6 needs the 227 input); batch 8 as for ``pe``
(at batch 16 a scratch network's training loss stayed at chance for 2 epochs), 2 epochs
(torchvision's full-size fc6 makes a batch-8 step cost as much as 8 more patches: 34
patches/s), base learning rate 0.003 [assumed] instead of the paper's 0.001 (as ``frames``:
at 0.001 a scratch run reached sensitivity 0.13 at 0.1 FP/frame, at 0.003 0.22). Paper: the
Caffe network at 227.
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 2, "input_size": 99, "arch": "torchvision",
                   "base_lr": 0.003},
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
    # [paper] polyp detection wants all layers: conv1/conv2 best.
    "paper_depth": "deep",
    "paper_numbers": {},
}
