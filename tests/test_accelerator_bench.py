"""The accelerator benchmark's pieces: its FLOP count against PyTorch's counter, and the
property it relies on: the network, the layer-wise step, the scorer and the dense inference
import without the data libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from experiments.bench.accelerator import forward_flops, step_flops
from experiments.torch_reference import build


@pytest.mark.parametrize("arch,size", [("caffe", 227), ("torchvision", 224)])
def test_forward_flops_match_pytorchs_flop_counter(arch, size):
    """PyTorch's FlopCounterMode on the reference network (2 x multiply-adds of every convolution
    and linear layer, per layer) is the independent count."""
    net, where = build(arch, num_classes=2)
    ours = forward_flops(arch, size)
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, size, size))
    per_module = counter.get_flop_counts()
    for layer, position in where.items():
        module = f"{type(net).__name__}.{position[0]}.{position[1]}"
        counted = [sum(v.values()) for k, v in per_module.items()
                   if k.endswith(f"{position[0]}.{position[1]}")]
        assert counted and ours[layer] == pytest.approx(counted[0]), module
    # The first tuned layer needs no input gradient: nothing below it is differentiated.
    assert step_flops(ours, "fc8") == pytest.approx(sum(ours.values()) + ours["fc8"])
    assert step_flops(ours, "conv1") == pytest.approx(3 * sum(ours.values()) - ours["conv1"])


def test_the_device_path_imports_without_the_data_libraries():
    blocked = ("google", "tensorflow", "tensorflow_datasets", "torch", "grain", "scipy", "orbax",
               "PIL", "sklearn", "pydicom", "nrrd", "tifffile", "matplotlib")
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import experiments.bench.accelerator, ftjax.dense, ftjax.layerwise, ftjax.scoring
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_sweep_cost_shares_match_xla_cost_analysis():
    """The FLOP share of a step on cached trunk features (shapes counted by hand) against the
    compiled steps' XLA cost analysis recorded in BUILD_NOTES (Caffe, 227, batch 128): conv5
    0.601, conv3 1.881 and fc6 0.255 GFLOP per image over conv1's 3.829."""
    from experiments.bench.sweep_costs import cached_share

    for depth, xla in (("conv5", 0.601), ("conv3", 1.881), ("fc6", 0.255), ("conv1", 3.829)):
        # XLA also counts ReLU, LRN, pooling and dropout, which the shapes count leaves out.
        assert cached_share("caffe", 227, depth) == pytest.approx(xla / 3.829, rel=0.1)
    assert cached_share("caffe", 227, "scratch") == 1.0
