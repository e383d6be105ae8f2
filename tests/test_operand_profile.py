"""Operand statistics measured at lowering: activation density and essential-bit profiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hwsim.interop.torch_profile import PROFILE_BITS, essential_histograms
from hwsim.ir import Layer, LayerGraph
from hwsim.lower import lower
from hwsim.models.arch import load_arch
from hwsim.simulate import NO_ESSENTIAL_BITS, simulate_graph


def _reference_histograms(values: np.ndarray, max_bits: int) -> list[list[float]]:
    """Plain loop: sign-magnitude codes with max |x| at the top code, popcount by string."""
    values = [float(v) for v in np.ravel(values)]
    top = max(abs(v) for v in values)
    signed = min(values) < 0
    out = []
    for bits in range(1, max_bits + 1):
        mag_bits = bits - 1 if signed else bits
        row = [0.0] * (bits + 1)
        for v in values:
            code = int(np.rint(abs(v) / top * (2 ** mag_bits - 1))) if top and mag_bits >= 1 else 0
            row[bin(code).count("1")] += 1 / len(values)
        out.append(row)
    return out


def _reference_group_max(hist: list[float], group: int, min_terms: int, samples: int = 200_000) -> float:
    """Monte Carlo: the mean over groups of ``group`` draws of max(min_terms, largest popcount)."""
    rng = np.random.default_rng(0)
    draws = rng.choice(len(hist), size=(samples, group), p=np.array(hist) / sum(hist))
    return float(np.maximum(draws.max(axis=1), min_terms).mean())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=1, max_size=200),
       st.integers(1, PROFILE_BITS))
def test_essential_histograms_match_the_plain_reference(values, max_bits):
    ours = essential_histograms(np.array(values, dtype=np.float32), max_bits=max_bits)
    ref = _reference_histograms(np.array(values, dtype=np.float32), max_bits)
    assert [list(row) for row in ours] == [pytest.approx(row, abs=2e-6) for row in ref]


def test_essential_histogram_hand_cases():
    # non-negative [0, 1, 2, 3] at 2 bits -> codes 0, 1, 2, 3 -> popcounts 0, 1, 1, 2
    assert essential_histograms(np.array([0.0, 1.0, 2.0, 3.0]), max_bits=2)[1] == (0.25, 0.5, 0.25)
    # signed [-3, 3] at 3 bits -> 2 magnitude bits -> codes 3, 3 -> 2 essential bits each
    assert essential_histograms(np.array([-3.0, 3.0]), max_bits=3)[2] == (0.0, 0.0, 1.0, 0.0)
    assert essential_histograms(np.zeros(8), max_bits=2) == ((1.0, 0.0), (1.0, 0.0, 0.0))


@pytest.mark.parametrize("group, min_terms", [(1, 0), (1, 1), (4, 0), (16, 1)])
def test_group_expectation_matches_monte_carlo(group, min_terms):
    hist = ((0.0, 1.0), (0.1, 0.2, 0.7), (0.3, 0.3, 0.2, 0.2))
    layer = Layer(name="x", op="conv", act_essential_hist=hist)
    assert layer.essential_bits_at(3, group=group, min_terms=min_terms) == pytest.approx(
        _reference_group_max(list(hist[2]), group, min_terms), abs=0.01)
    assert layer.essential_bits_at(3) == pytest.approx(0.3 * 1 + 0.2 * 2 + 0.2 * 3)      # the plain mean
    assert layer.essential_bits_at(4) is None                                             # not profiled


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
        assert layer.act_essential_hist == essential_histograms(seen[name].detach().numpy())
        assert layer.weight_essential_hist == essential_histograms(getattr(model, name).weight.detach().numpy())
    assert graph["a"].act_density == 1.0 and graph["b"].act_density < 0.8
    assert graph.meta["calibration"] == {"source": "example input", "batch": 4, "layers_profiled": 3}


def test_a_calibration_batch_sets_the_statistics_and_profile_false_skips_them():
    model = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 4, 1))
    negative = -torch.ones(2, 2, 4, 4)
    graph = lower(model, (1, 2, 4, 4), calibration=negative)
    assert graph.compute_layers()[0].act_density == 0.0                    # ReLU of negatives: all zero
    assert graph.meta["calibration"]["source"] == "calibration batch"
    plain = lower(model, (1, 2, 4, 4), profile=False)
    assert plain.compute_layers()[0].act_density == 1.0 and not plain.compute_layers()[0].act_essential_hist
    assert "calibration" not in plain.meta


def test_quantizer_annotations_win_over_the_measured_statistics():
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1))
    model[2].hwsim_meta = {"act_bits": 8, "act_density": 0.25, "act_essential_bits": 1.5}
    layer = lower(model, (1, 2, 4, 4)).compute_layers()[1]
    assert layer.act_density == 0.25 and layer.act_essential_bits == 1.5
    assert layer.act_essential_hist                                        # still recorded


def test_profiles_survive_json_and_bad_values_are_rejected(tmp_path):
    graph = lower(_ReluConv(), (1, 3, 6, 6))
    path = tmp_path / "g.json"
    graph.save(path)
    again = LayerGraph.load(path)
    assert [lay.act_essential_hist for lay in again.layers()] == [lay.act_essential_hist for lay in graph.layers()]
    with pytest.raises(ValueError, match="act_essential_hist at 2 bits"):
        Layer(name="x", op="conv", act_essential_hist=((0.5, 0.5), (0.5, 0.6, 0.0)))


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
    group = load_arch("pragmatic").bitserial.sync_group
    assert row.counts.detail("serial_bits") == pytest.approx(layer.essential_bits_at(width, group=group, min_terms=1))
    # lanes in lock-step wait for the slowest: a larger sync group never runs faster
    wide = load_arch("pragmatic").with_overrides({"bitserial.sync_group": group * 4})
    compute = [sum(r.compute_cycles for r in result.layers) for result in (pragmatic, simulate_graph(graph, wide))]
    assert compute[1] > compute[0]
    shapes_only = lower(model, (1, 3, 32, 32), profile=False)
    assert all(r.note == NO_ESSENTIAL_BITS for r in simulate_graph(shapes_only, load_arch("pragmatic")).layers
               if r.macs)
