"""One physics contract over every preset (scikit-learn's estimator_checks idea): new presets join automatically.

Each check derives variants of a preset with ``ArchSpec.with_overrides`` and runs the same small,
ResNet-18-shaped layer set on them. Exceptions are listed by name with the reason.
"""

from __future__ import annotations

import math

import pytest

from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph, Op, Sparsity
from hwsim.models.arch import load_arch, preset_names
from hwsim.simulate import simulate_graph

PRESETS = preset_names()


def _layers(density: float = 0.5, bits: int = 8) -> list[Layer]:
    """ResNet-18's shapes at 56x56 / 14x14 / 7x7 plus its classifier, pruned to ``density`` (unstructured)."""
    sparse = dict(weight_density=density, act_density=0.6,
                  sparsity=Sparsity("unstructured") if density < 1 else Sparsity(), weight_bits=bits, act_bits=bits)
    return [
        Layer("conv1", Op.CONV, K=64, C=3, P=112, Q=112, R=7, S=7, stride=2, padding=3, weight_bits=bits,
              act_bits=bits),
        Layer("layer1.conv", Op.CONV, K=64, C=64, P=56, Q=56, R=3, S=3, padding=1, **sparse),
        Layer("layer3.down", Op.CONV, K=256, C=128, P=14, Q=14, R=1, S=1, stride=2, **sparse),
        Layer("layer4.conv", Op.CONV, K=512, C=512, P=7, Q=7, R=3, S=3, padding=1, **sparse),
        Layer("fc", Op.LINEAR, K=1000, C=512, **sparse),
    ]


def _graph(**kw) -> LayerGraph:
    graph = LayerGraph("contract", input_shape=(1, 3, 224, 224))
    previous: list[str] = []
    for layer in _layers(**kw):
        graph.add_layer(layer, inputs=previous)
        previous = [layer.name]
    return graph


GRAPH = _graph()


def _run(arch, graph: LayerGraph = GRAPH):
    return simulate_graph(graph, arch)


def _dram_bytes(result, arch) -> float:
    dram = arch.memory[0].name
    return sum(a.total * a.word_bits / 8 for layer in result.layers for a in layer.counts.accesses if a.level == dram)


def _compute_cycles(result) -> int:
    return sum(layer.compute_cycles for layer in result.layers)


def _bandwidth(arch, factor: float) -> dict[str, float]:
    dram = arch.memory[0]
    out = {f"memory.{dram.name}.read_bw_bytes_per_cycle": (dram.read_bw_bytes_per_cycle or 64.0) * factor}
    if dram.write_bw_bytes_per_cycle:
        out[f"memory.{dram.name}.write_bw_bytes_per_cycle"] = dram.write_bw_bytes_per_cycle * factor
    return out


def _buffers(arch, factor: float) -> dict[str, object]:
    """Every on-chip buffer ``factor`` times its size, never below 64 B (register files stay: a register
    smaller than one accumulator word is an impossible design, not a smaller buffer)."""
    out: dict[str, object] = {}
    for level in arch.memory[1:]:
        if level.kind == "regfile":
            continue
        floor = max(64, (level.width_bits or level.word_bits) / 8)
        if level.partition_bytes:
            out[f"memory.{level.name}.partition_bytes"] = {t: max(math.ceil(floor), int(size * factor))
                                                          for t, size in level.partition_bytes.items()}
        else:
            out[f"memory.{level.name}.size_bytes"] = max(math.ceil(floor), int(level.size_bytes * factor))
    return out


@pytest.fixture(scope="module", params=PRESETS)
def preset(request):
    arch = load_arch(request.param)
    return arch, _run(arch)


def test_starved_dram_bandwidth_raises_cycles(preset):
    arch, base = preset
    starved = arch.with_overrides(_bandwidth(arch, 0.01))
    assert _run(starved).cycles > base.cycles, f"{arch.name}: DRAM bandwidth x0.01 left cycles unchanged"


@pytest.mark.parametrize("factor", [0.5, 0.25])
def test_less_bandwidth_never_fewer_cycles(preset, factor):
    arch, base = preset
    assert _run(arch.with_overrides(_bandwidth(arch, factor))).cycles >= base.cycles


@pytest.mark.parametrize("factor", [1 / 4, 1 / 256])
def test_smaller_buffers_never_less_dram_traffic(preset, factor):
    arch, base = preset
    small = arch.with_overrides(_buffers(arch, factor))
    result = _run(small)
    assert _dram_bytes(result, small) >= _dram_bytes(base, arch) * (1 - 1e-9)


# what "more PEs" means for each engine (the multiplier count the engine divides work by)
PE_FIELDS = {
    "systolic": lambda a: {"systolic.cols": a.systolic.cols * 2, "compute.units": a.compute.units * 2},
    "sparse": lambda a: ({"sparse.pes": a.sparse.pes * 2, "compute.units": a.compute.units * 2,
                          **({"sparse.pe_grid": (a.sparse.pe_grid[0] * 2, a.sparse.pe_grid[1])}
                             if a.sparse.pe_grid else {})}),
    "bitserial": lambda a: {"bitserial.lanes": a.bitserial.lanes * 2,
                            **({"bitserial.fusion_units": a.bitserial.fusion_units * 2}
                               if a.bitserial.fusion_units else {})},
    "binary": lambda a: {"binary.popcount_units": a.binary.popcount_units * 2},
    "spatial": lambda a: {f"memory.{a.memory[-1].name}.instances": a.memory[-1].instances * 2,
                          f"memory.{a.memory[-1].name}.mesh_x": a.memory[-1].mesh_x * 2,
                          "compute.units": a.compute.units * 2},
}


def test_more_pes_never_more_compute_cycles(preset):
    arch, base = preset
    bigger = arch.with_overrides(PE_FIELDS[arch.engine](arch))
    assert _compute_cycles(_run(bigger)) <= _compute_cycles(base)


def _skips(arch) -> bool:
    return arch.engine == "sparse" and arch.sparse.skip != "none" and arch.sparse.dataflow != "nm_dense"


def test_denser_weights_never_fewer_cycles_on_skipping_engines(preset):
    arch, base = preset
    if not _skips(arch):
        pytest.skip(f"{arch.name} does not skip zero weights")
    denser = _run(arch, _graph(density=0.9))
    assert _compute_cycles(denser) >= _compute_cycles(base)


@pytest.mark.parametrize("low, high", [(4, 8), (2, 4)])
def test_more_bits_never_fewer_cycles_on_bit_serial_engines(preset, low, high):
    arch, _ = preset
    if arch.engine != "bitserial":
        pytest.skip(f"{arch.name} is not bit-serial")
    assert _run(arch, _graph(bits=high)).cycles >= _run(arch, _graph(bits=low)).cycles


# fields each engine claims to use: doubling one must change cycles, energy or DRAM traffic
USED_FIELDS = {
    "systolic": ["systolic.rows", "systolic.cols", "clock_hz", "compute.weight_bits"],
    "spatial": ["clock_hz"],   # (a wider datapath does not fit some presets' 16-bit accumulator registers)
    "sparse": ["sparse.multipliers_per_pe", "clock_hz", "compute.weight_bits"],
    "bitserial": ["bitserial.lanes", "clock_hz"],
    "binary": ["binary.popcount_units", "binary.xnor_width", "clock_hz"],
}


def _doubled(arch, field: str):
    if arch.engine == "sparse" and arch.sparse.dataflow == "nm_dense" and field == "sparse.multipliers_per_pe":
        rows, cols = arch.sparse.pe_grid     # the N:M array's grid and its PE split move together
        return arch.with_overrides({field: arch.sparse.multipliers_per_pe * 2, "sparse.pe_grid": (rows, cols * 2)})
    node = arch
    for part in field.split("."):
        node = getattr(node, part)
    overrides = {field: node * 2}
    if field == "compute.weight_bits":   # a wider datapath also needs a wide enough accumulator
        overrides["compute.acc_bits"] = max(arch.compute.acc_bits, node * 2)
    return arch.with_overrides(overrides)


def _binarized() -> LayerGraph:
    """The contract graph binarized (XNOR-Net keeps the first and last layer in integer)."""
    graph = _graph(density=1.0)
    for layer in graph.layers()[1:-1]:
        graph.replace_layer(layer.with_changes(weight_bits=1, act_bits=1, number_format="binary"))
    return graph


def test_every_used_field_changes_something(preset):
    arch, base = preset
    graph = _binarized() if arch.engine == "binary" else GRAPH
    base = _run(arch, graph)
    for field in USED_FIELDS[arch.engine]:
        result = _run(_doubled(arch, field), graph)
        changed = (result.cycles != base.cycles or abs(result.energy_pj - base.energy_pj) > 1e-6 * base.energy_pj
                   or result.latency_s != base.latency_s)
        assert changed, f"{arch.name}: doubling {field} changed nothing"


def test_every_dram_and_buffer_size_changes_traffic_somewhere(preset):
    """The on-chip capacity is modelled: at 1/256 of every buffer, some layer refetches from DRAM."""
    arch, base = preset
    small = arch.with_overrides(_buffers(arch, 1 / 256))
    assert _dram_bytes(_run(small), small) > _dram_bytes(base, arch), f"{arch.name}: buffers are not modelled"


def _compute_pj(result) -> float:
    return sum(layer.compute_energy_pj for layer in result.layers)


def test_the_datapath_width_sets_the_mac(preset):
    """On a fixed-width array a narrower layer pays the array's MAC; a wider one takes more passes."""
    arch, _ = preset
    if arch.compute.precision == "scalable" or arch.engine == "binary":
        pytest.skip(f"{arch.name}: the engine scales with operand width (bit-serial / binary)")
    native = min(arch.compute.weight_bits, arch.compute.act_bits)
    narrow = _run(arch, _graph(bits=max(2, native // 2)))
    full = _run(arch, _graph(bits=native))
    if arch.compute.precision == "fixed":
        assert _compute_pj(narrow) == pytest.approx(_compute_pj(full), rel=1e-12)
    else:
        assert _compute_pj(narrow) <= _compute_pj(full)
    assert _compute_cycles(narrow) >= _compute_cycles(full) * 0.999   # no speed-up from narrow operands


def test_a_layer_wider_than_the_datapath_takes_passes_or_is_refused(preset):
    arch, _ = preset
    if arch.compute.precision == "scalable" or arch.engine == "binary":
        pytest.skip(f"{arch.name}: the engine scales with operand width (bit-serial / binary)")
    wide = max(arch.compute.weight_bits, arch.compute.act_bits) * 2
    graph = _graph(bits=min(wide, 32))
    graph.replace_layer(graph["fc"].with_changes(acc_bits=64))
    if arch.compute.wider == "refuse":
        with pytest.raises(Exception, match="datapath"):
            _run(arch, graph)
        return
    layers = {l.name: l for l in _run(arch, graph).layers}
    base = {l.name: l for l in _run(arch, _graph(bits=min(arch.compute.weight_bits, arch.compute.act_bits))).layers}
    assert layers["fc"].compute_cycles >= 2 * base["fc"].compute_cycles


@pytest.mark.parametrize("overrides, field", [
    ({"systolic.interface_bandwidth": "USER"}, "systolic.interface_bandwidth"),
    ({"systolic.ifmap_fill_words_per_cycle": 4}, "systolic.ifmap_fill_words_per_cycle"),
    ({"systolic.mode": "scalesim", "systolic.filter_fill_words_per_cycle": 4}, "systolic.filter_fill_words_per_cycle"),
])
def test_scalesim_interface_fields_are_rejected_where_unread(overrides, field):
    """SCALE-Sim's interface fields drive only its compatible mode (USER fills only USER mode)."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_arch("edge_tpu_like").with_overrides(overrides)
    user = load_arch("edge_tpu_like").with_overrides({"systolic.mode": "scalesim", "systolic.interface_bandwidth": "USER",
                                                      "systolic.ifmap_fill_words_per_cycle": 4})
    assert user.systolic.ifmap_fill_words_per_cycle == 4


def _act_density_graph(act_density: float) -> LayerGraph:
    graph = LayerGraph("contract_acts", input_shape=(1, 3, 224, 224))
    previous: list[str] = []
    for layer in _layers(density=1.0):
        layer = layer.with_changes(act_density=act_density)
        graph.add_layer(layer, inputs=previous)
        previous = [layer.name]
    return graph


def _declares_zero_handling(arch) -> bool:
    return arch.engine == "spatial" and arch.spatial is not None and (
        arch.spatial.act_zeros != "none" or arch.spatial.act_dram_format != "none")


def test_sparser_activations_never_cost_more_where_zeros_are_handled(preset):
    """Presets that gate, skip or run-length code zero activations: fewer non-zeros never cost more energy,
    cycles or DRAM traffic (gating keeps the cycles; skipping removes some)."""
    arch, _ = preset
    if not _declares_zero_handling(arch):
        pytest.skip(f"{arch.name} declares no zero-activation handling")
    dense, sparse = _run(arch, _act_density_graph(1.0)), _run(arch, _act_density_graph(0.3))
    assert sparse.energy_pj < dense.energy_pj
    assert sparse.cycles <= dense.cycles
    assert _dram_bytes(sparse, arch) <= _dram_bytes(dense, arch)
    if arch.spatial.act_zeros == "gate":
        assert _compute_cycles(sparse) == _compute_cycles(dense)
