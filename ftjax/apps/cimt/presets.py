"""The cimt application's trainer presets and study facts: plain data, read by the trainer and
the study harness without importing the application (PAPER.md, section 4).

The network input is an integer multiple of the patch side dividing 32, so that the dense
inference can run the network convolutionally (``ftjax.dense``). Paper [assumed]: the Caffe
network at 224 (s = 8 of 28-pixel patches; its prime 227 admits no integer scale, and 224 still
gives the 6x6 pool5 maps its ImageNet fc6 takes). Smoke [assumed]: the torchvision network at
100 (s = 4 of 25-pixel patches; its adaptive pooling lets the ImageNet fc6 take the small
input), batch 8 as the other apps, 2 epochs, so that a run from scratch or fine-tuned stays
under 5 minutes on 2 cores, and a base learning rate of 0.003 as the colonoscopy smoke presets
(at the paper's 0.001 a scratch network's training loss stayed at chance, 1.10, for the first
of its two epochs).
"""

TRAIN = {"smoke": {"batch_size": 8, "epochs": 2, "input_size": 100, "arch": "torchvision",
                   "base_lr": 0.003},
         "paper": {"input_size": 224, "eval_chunk": 64}}

# [paper] Fig. 9, mean LI / MA error in um.
PAPER_FIG9 = {"fc8": (101.0, 103.3), "fc7": (34.7, 43.9), "fc6": (27.9, 34.6),
              "conv5": (25.3, 31.9), "conv4": (25.0, 30.6), "conv3": (24.4, 31.8),
              "conv2": (24.7, 31.7), "conv1": (24.7, 31.2), "scratch": (28.1, 33.5),
              "handcrafted": (98.2, 106.6)}

STUDY = {
    # [assumed] deep tuning and scratch with 50% and 25% of the training subjects (the paper
    # reduced the training sets of the other applications this way).
    "reduced_fractions": (0.5, 0.25),
    "reduced_configs": ("conv1", "scratch"),
    "reduction_unit": "subjects",
    # [paper] mean absolute boundary error per interface (um), box plots.
    "metric": "boundary",
    "operating_points": (),
    "figure": {"kind": "boxplot"},
    # [paper] CIMT wants all layers (conv1..conv4 within 1 um of each other).
    "paper_depth": "deep",
    "paper_numbers": {"li_ma_um": PAPER_FIG9},
    # What the study report puts beside its own per-interface means.
    "paper_table": {"title": "the paper's Fig. 9 (private data: context, not comparable)",
                    "columns": ("LI", "MA"), "unit": "um", "rows": PAPER_FIG9},
}
