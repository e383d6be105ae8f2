"""``active_pes``: the PE / multiplier instances each engine's mapping puts to work, in every result view."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from hwsim.ir import Layer, LayerGraph, Op
from hwsim.mappers.mapping import LevelMapping, Mapping
from hwsim.models.arch import load_arch, preset_names, validate_arch
from hwsim.models.spatial import evaluate, problem_from_layer
from hwsim.models.spatial.nest import active_instances
from hwsim.simulate import simulate_graph

from test_contract import GRAPH


def _arch(pes: int = 28, mesh_x: int = 14):
    return validate_arch({
        "name": "toy", "engine": "spatial", "clock_hz": 1e9, "technology_nm": 45,
        "memory": [{"name": "DRAM", "kind": "dram"},
                   {"name": "GLB", "kind": "sram", "size_bytes": 1 << 20},
                   {"name": "PE", "kind": "regfile", "size_bytes": 1024, "instances": pes, "mesh_x": mesh_x,
                    "mesh_y": pes // mesh_x}],
        "compute": {"units": pes}}, origin="toy")


def _active_ref(bound: int, loops: list[tuple[int, bool]]) -> int:
    """Positions of the spatial loops (outer -> inner, (bound, spatial)) whose index is < bound at temporal 0."""
    strides = [math.prod(b for b, _ in loops[i + 1:]) for i in range(len(loops))]
    spatial = [(b, s) for (b, sp), s in zip(loops, strides) if sp]
    count = 0
    for combo in range(math.prod(b for b, _ in spatial)):
        index, rest = 0, combo
        for b, stride in spatial:
            index += (rest % b) * stride
            rest //= b
        count += index < bound
    return count


@pytest.mark.parametrize("P, x, y, outer, expected", [
    (27, 14, 2, 1, 27),     # Eyeriss CONV2's 27 output rows folded into 2 segments of 14: one PE idle
    (28, 14, 2, 1, 28),     # divides: every position works
    (13, 14, 1, 1, 13),     # dim smaller than the axis
    (40, 14, 2, 2, 28),     # a temporal loop outside: its first iteration is full
    (1, 14, 2, 1, 1),
])
def test_active_instances_counts_unpadded_positions(P, x, y, outer, expected):
    layer = Layer("rows", Op.CONV, K=1, C=1, P=P, Q=1, R=1, S=1)
    mapping = Mapping(levels=(LevelMapping("DRAM", temporal=(("P", outer),)),
                              LevelMapping("GLB", spatial_x=(("P", x),), spatial_y=(("P", y),)),
                              LevelMapping("PE")))
    assert active_instances(problem_from_layer(layer), mapping) == expected
    assert _active_ref(P, [(outer, False), (x, True), (y, True)]) == expected
    assert evaluate(layer, _arch(), mapping).active_pes == expected


def test_active_instances_multiplies_over_dims():
    layer = Layer("kp", Op.CONV, K=3, C=1, P=5, Q=1, R=1, S=1)
    mapping = Mapping(levels=(LevelMapping("DRAM"),
                              LevelMapping("GLB", spatial_x=(("P", 7),), spatial_y=(("K", 2),)),
                              LevelMapping("PE", temporal=(("K", 2),))))
    # K: spatial 2 outside a temporal 2 -> indices 0 and 2 < 3 both work; P: 5 of 7 columns
    assert active_instances(problem_from_layer(layer), mapping) == 2 * 5


def _systolic(rows: int, cols: int, cores: int = 1):
    return load_arch("tpu_v1_like").with_overrides({"systolic.rows": rows, "systolic.cols": cols,
                                                    "systolic.cores": cores})


@pytest.mark.parametrize("layer, rows, cols, cores, expected", [
    (Layer("small_k", Op.CONV, K=4, C=3, P=8, Q=8, R=3, S=3), 8, 8, 1, 8 * 4),   # ws: Kred=27 rows, K=4 cols
    (Layer("fc", Op.LINEAR, K=100, C=6), 16, 16, 1, 6 * 16),
    (Layer("fc2", Op.LINEAR, N=4, K=100, C=64), 16, 16, 2, 2 * 16 * 16),
])
def test_systolic_active_pes_is_the_fullest_fold(layer, rows, cols, cores, expected):
    result = simulate_graph(_one(layer), _systolic(rows, cols, cores))
    assert result.layers[0].active_pes == expected


def _one(layer: Layer) -> LayerGraph:
    graph = LayerGraph("one", input_shape=(1, 3, 8, 8))
    graph.add_layer(layer, inputs=[])
    return graph


@pytest.mark.parametrize("preset", preset_names())
def test_every_engine_reports_active_pes_within_its_units(preset):
    arch = load_arch(preset)
    result = simulate_graph(GRAPH, arch)
    for layer in result.layers:
        assert 1 <= layer.active_pes <= arch.compute.units, (layer.name, layer.active_pes)
    frame = result.to_dataframe()
    assert list(frame["active_pes"]) == [layer.active_pes for layer in result.layers]
    assert [row["active_pes"] for row in result.to_json()["layers"]] == list(frame["active_pes"])


def test_fewer_output_channels_than_pes_leave_pes_idle_on_eie():
    arch = load_arch("eie")
    result = simulate_graph(_one(Layer("narrow", Op.LINEAR, K=10, C=64, weight_density=0.5)), arch)
    assert result.layers[0].active_pes == 10 * arch.sparse.multipliers_per_pe


def test_cli_table_shows_active_pes(tmp_path):
    from hwsim.cli import app

    path = tmp_path / "g.json"
    GRAPH.save(path)
    out = CliRunner().invoke(app, ["simulate", str(path), "--arch", "eyeriss"])
    assert out.exit_code == 0, out.output
    assert "active PEs" in out.output
