"""One training step on the hardware: MACs against torch's flop counter, phases, meProp on skipping engines."""

from __future__ import annotations

import math

import pytest

from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate_graph
from hwsim.training import training_graph


def _torch_training_macs(name: str, batch: int) -> float:
    """Half the FLOPs torch's FlopCounterMode counts over forward + loss.backward() (its MAC convention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hwsim import zoo

    model = zoo.create(name, seed=0).train()
    shape = zoo.input_shape(name, batch=batch)
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("name, batch", [("digits_cnn", 4), ("resnet18", 1)])
def test_training_macs_equal_half_of_torch_flops(name, batch, one_torch_thread):
    from hwsim.lower import load_graph

    graph = training_graph(load_graph(name, batch=batch))
    assert graph.macs == _torch_training_macs(name, batch)
    first = graph.compute_layers()[0].name
    assert f"{first}.dX" not in graph.graph                      # the input needs no gradient
    phases = {layer.phase for layer in graph.layers()}
    assert phases == {"forward", "backward_data", "backward_weight", "update"}


def conv(**kw) -> Layer:
    return Layer("c", Op.CONV, K=64, C=64, P=28, Q=28, R=3, S=3, padding=1, **kw)


def _step(layer: Layer, arch: str):
    graph = LayerGraph("g")
    graph.add_layer(Layer("stem", Op.CONV, K=64, C=3, P=28, Q=28, R=3, S=3, padding=1))
    graph.add_layer(layer, inputs=["stem"])
    return simulate_graph(training_graph(graph), load_arch(arch))


def test_backward_shapes_are_the_transposed_problems():
    graph = LayerGraph("g")
    graph.add_layer(Layer("stem", Op.CONV, K=8, C=3, P=8, Q=8, R=3, S=3, padding=1))
    graph.add_layer(Layer("fc", Op.LINEAR, K=10, C=512, P=4), inputs=["stem"])
    train = training_graph(graph)
    dx, dw = train["fc.dX"], train["fc.dW"]
    assert (dx.K, dx.C, dx.P) == (512, 10, 4) and dx.macs == graph["fc"].macs
    assert (dw.op, dw.P, dw.C, dw.K) == (Op.MATMUL, 10, 4, 512) and dw.macs == graph["fc"].macs
    assert train["fc.update"].vector_ops == 2 * 512 * 10
    with pytest.raises(ValueError, match="already a training graph"):
        training_graph(train)


def test_meprop_gains_on_a_skipping_engine_not_on_a_dense_array():
    dense_layer, sparse_layer = conv(), conv(grad_density=0.1)
    for arch, gains in (("edge_tpu_like", False), ("scnn", True)):
        full, meprop = _step(dense_layer, arch).phases, _step(sparse_layer, arch).phases
        back = lambda p: p["backward_data"]["cycles"] + p["backward_weight"]["cycles"]  # noqa: E731
        assert full["forward"]["cycles"] == meprop["forward"]["cycles"]
        if gains:
            assert back(meprop) < 0.7 * back(full), arch
        else:
            assert back(meprop) == back(full), arch


def test_cli_training_step_reports_phases(tmp_path):
    import json

    from tests.conftest import run_cli

    graph = LayerGraph("g")
    graph.add_layer(Layer("stem", Op.CONV, K=8, C=3, P=8, Q=8, R=3, S=3, padding=1))
    graph.add_layer(Layer("fc", Op.LINEAR, K=10, C=512), inputs=["stem"])
    path = graph.save(tmp_path / "g.json")
    run = run_cli("simulate", str(path), "--training", "--quiet", "--json", str(tmp_path / "o.json"))
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "o.json").read_text())
    assert set(data["total"]["phases"]) == {"forward", "backward_data", "backward_weight", "update"}
    assert "training step by phase" in run.stdout
    dp = run_cli("simulate", str(path), "--training", "--quiet", "--devices", "4", "--link", "ethernet_10g",
                 "--grad-compression", "qsgd:4", "--json", str(tmp_path / "p.json"))
    assert dp.returncode == 0, dp.stderr
    total = json.loads((tmp_path / "p.json").read_text())["total"]
    assert total["communication_s"] >= 0 and 0 < total["speedup_vs_one_device"] <= 4
    bad = run_cli("simulate", str(path), "--devices", "4", "--link", "ethernet_10g")
    assert bad.returncode == 2 and "add --training" in bad.stderr


# ----- data-parallel communication ------------------------------------------------------------------
def test_ring_allreduce_is_the_alpha_beta_formula():
    from hwsim.models.comm import Link, ring_allreduce_s

    link = Link("l", bandwidth_bytes_per_s=1e9, latency_s=5e-6)
    for p, n in ((2, 1e6), (8, 4e7), (16, 123456.0)):
        assert ring_allreduce_s(n, p, link) == pytest.approx(2 * (p - 1) * 5e-6 + 2 * (p - 1) / p * n / 1e9)
    assert ring_allreduce_s(1e6, 1, link) == 0.0


def test_gradient_sizes_follow_the_papers():
    from hwsim.models.comm import gradient_bits

    n = 1_000_000
    assert gradient_bits(n, "none") == 32 * n
    assert gradient_bits(n, "terngrad") == 2 * n + 32
    # qsgd:4 = sign + 3-bit level (s = 7), one fp32 norm per 512-element bucket
    assert gradient_bits(n, "qsgd:4", coding="fixed") == 4 * n + 32 * math.ceil(n / 512)
    assert gradient_bits(n, "qsgd:4") < gradient_bits(n, "qsgd:4", coding="fixed")   # Elias-coded
    with pytest.raises(Exception, match="qsgd:<bits>"):
        gradient_bits(n, "qsgd")


def test_data_parallel_exposes_communication_and_compression_hides_it():
    from hwsim.models.comm import data_parallel, load_link

    graph = LayerGraph("g")
    graph.add_layer(Layer("stem", Op.CONV, K=64, C=3, P=28, Q=28, R=3, S=3, padding=1))
    graph.add_layer(Layer("fc", Op.LINEAR, K=4096, C=4096), inputs=["stem"])
    from hwsim.simulate import simulate

    result = simulate(graph, "edge_tpu_like", training=True)
    link = load_link("ethernet_10g")
    one = data_parallel(result, devices=1, link=link)
    assert one["communication_s"] == 0.0 and one["speedup_vs_one_device"] == pytest.approx(1.0)
    fp32 = data_parallel(result, devices=8, link=link)
    tern = data_parallel(result, devices=8, link=link, scheme="terngrad")
    assert fp32["communication_s"] > tern["communication_s"] >= 0
    assert tern["speedup_vs_one_device"] > fp32["speedup_vs_one_device"]
    assert fp32["gradient_bytes"] == pytest.approx(4 * (64 * 27 + 4096 * 4096))
