"""Networks: the paper's Caffe AlexNet and torchvision's AlexNet as Flax modules."""

from ftjax.models.alexnet import LAYERS, AlexNet, input_size

__all__ = ["LAYERS", "AlexNet", "input_size"]
