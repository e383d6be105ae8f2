"""Operand statistics measured at lowering: activation density and essential-bit profiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hwsim.interop.torch_profile import PROFILE_BITS, essential_profile
from hwsim.ir import Layer, LayerGraph
from hwsim.lower import lower
from hwsim.models.arch import load_arch
from hwsim.simulate import NO_ESSENTIAL_BITS, simulate_graph


def _reference_profile(values: np.ndarray, max_bits: int) -> list[float]:
    """Plain loop: sign-magnitude codes with max |x| at the top code, popcount by string."""
    values = [float(v) for v in np.ravel(values)]
    top = max(abs(v) for v in values)
    signed = min(values) < 0
    out = []
    for bits in range(1, max_bits + 1):
        mag_bits = bits - 1 if signed else bits
        if top == 0 or mag_bits < 1:
            out.append(0.0)
            continue
        codes = [int(np.rint(abs(v) / top * (2 ** mag_bits - 1))) for v in values]
        out.append(sum(bin(c).count("1") for c in codes) / len(codes))
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=1, max_size=200),
       st.integers(1, PROFILE_BITS))
def test_essential_profile_matches_the_plain_reference(values, max_bits):
    ours = essential_profile(np.array(values, dtype=np.float32), max_bits=max_bits)
    assert ours == pytest.approx(_reference_profile(np.array(values, dtype=np.float32), max_bits), abs=1e-6)


def test_essential_profile_hand_cases():
    # non-negative [0, 1, 2, 3] at 2 bits -> codes 0, 1, 2, 3 -> popcounts 0, 1, 1, 2 -> mean 1.0
    assert essential_profile(np.array([0.0, 1.0, 2.0, 3.0]), max_bits=2)[1] == pytest.approx(1.0)
    # signed [-3, 3] at 3 bits -> 2 magnitude bits -> codes 3, 3 -> 2 essential bits each
    assert essential_profile(np.array([-3.0, 3.0]), max_bits=3) == pytest.approx((0.0, 1.0, 2.0))
    assert essential_profile(np.zeros(8), max_bits=4) == (0.0, 0.0, 0.0, 0.0)


class _ReluConv(nn.Module):
    """conv -> ReLU -> conv -> flatten -> linear: the second conv and the linear see ReLU zeros."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        x = torch.relu(self.a(x))
        return self.fc(torch.flatten(torch.relu(self.b(x)), 1))


def test_lowering_records_the_measured_input_density_of_every_weighted_layer():
    model = _ReluConv()
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    seen = {}
    handles = [getattr(model, n).register_forward_pre_hook(lambda _m, a, n=n: seen.__setitem__(n, a[0]))
               for n in ("a", "b", "fc")]
    model(x)
    for h in handles:
        h.remove()
    graph = lower(model, example_input=x)
    for name in ("a", "b", "fc"):
        layer = next(lay for lay in graph.compute_layers() if lay.source == name)
        assert layer.act_density == pytest.approx(float((seen[name] != 0).float().mean()))
        assert layer.act_essential_profile == pytest.approx(essential_profile(seen[name].detach().numpy()))
        assert layer.weight_essential_profile == pytest.approx(
            essential_profile(getattr(model, name).weight.detach().numpy()))
    assert graph["a"].act_density == 1.0 and graph["b"].act_density < 0.8
    assert graph.meta["calibration"] == {"source": "example input", "batch": 4, "layers_profiled": 3}


def test_a_calibration_batch_sets_the_statistics_and_profile_false_skips_them():
    model = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 4, 1))
    negative = -torch.ones(2, 2, 4, 4)
    graph = lower(model, (1, 2, 4, 4), calibration=negative)
    assert graph.compute_layers()[0].act_density == 0.0                    # ReLU of negatives: all zero
    assert graph.meta["calibration"]["source"] == "calibration batch"
    plain = lower(model, (1, 2, 4, 4), profile=False)
    assert plain.compute_layers()[0].act_density == 1.0 and not plain.compute_layers()[0].act_essential_profile
    assert "calibration" not in plain.meta


def test_quantizer_annotations_win_over_the_measured_statistics():
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1))
    model[2].hwsim_meta = {"act_bits": 8, "act_density": 0.25, "act_essential_bits": 1.5}
    layer = lower(model, (1, 2, 4, 4)).compute_layers()[1]
    assert layer.act_density == 0.25 and layer.act_essential_bits == 1.5
    assert layer.act_essential_profile                                     # still recorded


def test_profiles_survive_json_and_bad_values_are_rejected(tmp_path):
    graph = lower(_ReluConv(), (1, 3, 6, 6))
    path = tmp_path / "g.json"
    graph.save(path)
    again = LayerGraph.load(path)
    assert [lay.act_essential_profile for lay in again.layers()] == [lay.act_essential_profile for lay in graph.layers()]
    with pytest.raises(ValueError, match="act_essential_profile at 2 bits"):
        Layer(name="x", op="conv", act_essential_profile=(1.0, 2.5))


def test_pragmatic_runs_the_measured_essential_bits_and_differs_from_stripes():
    """Bit-Pragmatic (Albericio et al., MICRO 2017) processes only the essential bits: on a lowered
    torch model it is faster than Stripes and carries no 'no profile' note; a shape-only graph says so."""
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
    graph = lower(model, (1, 3, 32, 32))      # compute-bound on both engines (memory-bound tiny layers tie)
    stripes = simulate_graph(graph, load_arch("stripes"))
    pragmatic = simulate_graph(graph, load_arch("pragmatic"))
    assert pragmatic.total["cycles"] < stripes.total["cycles"]
    assert all(r.note != NO_ESSENTIAL_BITS for r in pragmatic.layers)
    width = load_arch("pragmatic").compute.act_bits
    layer = graph.compute_layers()[1]
    row = next(r for r in pragmatic.layers if r.name == layer.name)
    assert row.counts.detail("serial_bits") == pytest.approx(min(layer.essential_bits_at(width), width))
    shapes_only = lower(model, (1, 3, 32, 32), profile=False)
    assert all(r.note == NO_ESSENTIAL_BITS for r in simulate_graph(shapes_only, load_arch("pragmatic")).layers
               if r.macs)
