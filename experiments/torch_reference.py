"""The two AlexNets in PyTorch ops: the independent reference for parity tests and benchmarks.

Needs the ``test`` extra (PyTorch). The torchvision variant has torchvision's module layout, so its
``state_dict`` keys are those of ``torchvision.models.alexnet``; the Caffe variant is BVLC AlexNet
(grouped convolutions, LRN, ceil-mode pooling).
"""

from __future__ import annotations

import torch
from torch import nn


def caffe_alexnet(num_classes: int = 1000) -> nn.Module:
    """BVLC AlexNet: the paper's network."""
    features = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(),
        nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
    )
    classifier = nn.Sequential(
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )
    return _Net(features, nn.Identity(), classifier)


def torchvision_alexnet(num_classes: int = 1000) -> nn.Module:
    """torchvision's ``alexnet`` (same modules, same state_dict keys)."""
    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes),
    )
    return _Net(features, nn.AdaptiveAvgPool2d((6, 6)), classifier)


# Indices of the weight-bearing modules in ``features`` / ``classifier``, in LAYERS order.
CAFFE_INDICES = {"conv1": ("features", 0), "conv2": ("features", 4), "conv3": ("features", 8),
                 "conv4": ("features", 10), "conv5": ("features", 12), "fc6": ("classifier", 0),
                 "fc7": ("classifier", 3), "fc8": ("classifier", 6)}
TORCHVISION_INDICES = {"conv1": ("features", 0), "conv2": ("features", 3),
                       "conv3": ("features", 6), "conv4": ("features", 8),
                       "conv5": ("features", 10), "fc6": ("classifier", 1),
                       "fc7": ("classifier", 4), "fc8": ("classifier", 6)}


class _Net(nn.Module):
    def __init__(self, features: nn.Module, avgpool: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features, self.avgpool, self.classifier = features, avgpool, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build(variant: str, num_classes: int = 1000) -> tuple[nn.Module, dict[str, tuple[str, int]]]:
    """The reference network of ``variant`` and where each paper layer sits in it."""
    if variant == "caffe":
        return caffe_alexnet(num_classes), CAFFE_INDICES
    return torchvision_alexnet(num_classes), TORCHVISION_INDICES


def layer_module(net: nn.Module, where: tuple[str, int]) -> nn.Module:
    """The torch module at a ``(sequential, index)`` position."""
    return getattr(net, where[0])[where[1]]
