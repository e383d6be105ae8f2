"""SBNet (Ren et al., CVPR 2018): active output tiles, gather -> dense conv -> scatter, on the hardware."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwsim.compress.recipe import apply_recipe
from hwsim.interop.tiles import tiled_layers
from hwsim.ir import Layer, Op
from hwsim.lower import lower
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate_graph


def test_tiled_layers_count_the_active_tiles_and_their_halo():
    conv = Layer("c", Op.CONV, K=32, C=16, P=16, Q=16, R=3, S=3, padding=1)
    gather, tiled, scatter = tiled_layers(conv, (4, 4), active=5)
    assert tiled.macs * 16 == conv.macs * 5                      # 5 of the 16 4x4 tiles
    assert (gather.N, gather.K, gather.P, gather.Q) == (5, 16, 6, 6)   # each tile's 4x4 output needs 6x6 inputs
    assert gather.output_elems == 5 * 16 * 6 * 6 and scatter.output_elems == 5 * 32 * 4 * 4
    assert tiled.padding == (0, 0) and tiled.input_hw == (6, 6)
    strided = tiled_layers(conv.with_changes(stride=2, P=8, Q=8), (4, 4), active=1)[0]
    assert (strided.P, strided.Q) == (9, 9)                      # (4-1)*2 + 3
    with pytest.raises(ValueError, match="at least one active tile"):
        tiled_layers(conv, (4, 4), active=0)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)

    def forward(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


def test_sbnet_zeroes_the_inactive_tiles_and_lowers_to_fewer_dense_macs():
    model = _Net().eval()
    for bn in (model.bn1, model.bn2):             # a non-trivial shift: inactive tiles must still be zero
        bn.bias.data.fill_(0.5)
    calib = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    compressed, report = apply_recipe(model, [{"method": "sbnet", "sparsity": 0.75, "block": [4, 4],
                                               "layers": ["conv2"]}], calib=calib)
    values = dict(report.steps[0].changes[0].values)
    assert (values["active_tiles"], values["tiles"]) == (4, 16)
    out = compressed(calib)[0].abs().sum(dim=0)                 # per output pixel
    active = (out.reshape(4, 4, 4, 4).sum(dim=(1, 3)) > 0)     # 4x4 grid of 4x4 tiles
    assert int(active.sum()) == 4                              # zero outside the active tiles, after the norm
    dense, tiled = lower(_Net(), (1, 3, 16, 16)), lower(compressed, (1, 3, 16, 16))
    assert [lay.name for lay in tiled.layers()] == ["conv1", "conv2.gather", "conv2", "conv2.scatter"]
    assert tiled["conv2"].macs * 4 == dense["conv2"].macs       # norms folded; a quarter of the MACs
    arch = load_arch("edge_tpu_like")
    assert simulate_graph(tiled, arch).total["macs"] < simulate_graph(dense, arch).total["macs"]
    moves = [r for r in simulate_graph(tiled, arch).layers if r.name.endswith((".gather", ".scatter"))]
    assert all(r.energy_pj > 0 and r.cycles > 0 for r in moves)   # the copies are paid for
