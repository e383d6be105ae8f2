"""``simulate()``: the pipeline step that runs a LayerGraph on an architecture.

layer -> mapping (mapper) -> counts (engine, or vector unit for non-MAC layers) -> energy (price)
-> ``LayerResult``; layers add up serially into a ``NetworkResult``. Torch is imported only when
the model is not already a ``LayerGraph``/saved graph (zoo name, ``nn.Module``, ONNX, recipe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph
from hwsim.models import get_engine
from hwsim.models.arch import ArchSpec, load_arch
from hwsim.models.counts import LayerCounts
from hwsim.models.datapath import apply_datapath, clamp_to_datapath, resolve_layer
from hwsim.results import LayerResult, NetworkResult


NO_ESSENTIAL_BITS = ("no essential-bit profile: Pragmatic ran every activation at its full width "
                     "(the same cycles as Stripes); lower the torch model (not a meta/shape-only graph) to measure one")


class Mapper(Protocol):
    def map(self, layer: Layer, arch: ArchSpec) -> Any: ...


def resolve_graph(model: Any, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
                  recipe: Any = None, skip_unsupported: bool = False, seed: int = 0,
                  weights: str | Path | None = None, data: str | None = None) -> LayerGraph:
    """Turn a LayerGraph, saved graph (``.json``), ``.onnx`` file, zoo name, full-model ``.pt`` or ``nn.Module``
    into a LayerGraph.

    ``batch=None`` keeps a saved graph's own batch (zoo models use 1). Saved graphs and ONNX files are
    read without importing torch. ``weights`` (a state_dict file for a zoo name) and ``.pt`` files go
    through ``hwsim.sources``; ``data`` (``hwsim.datasets`` name, folder or entry point) gives the
    compression calibration batch and lowering's calibration input.
    """
    from hwsim.sources import is_graph_file, is_model_file

    if isinstance(model, LayerGraph) or is_graph_file(model):
        if recipe is not None:
            raise ConfigError(f"{getattr(model, 'name', model)}: a recipe needs a torch model "
                              "(zoo name, .pt file or nn.Module), not a lowered graph")
        if weights is not None or data is not None:
            raise ConfigError(f"{getattr(model, 'name', model)}: --weights/--data need a torch model "
                              "(zoo name or .pt file), not a lowered graph")
        if isinstance(model, LayerGraph):
            if batch is None:
                return model
            from hwsim.lower import rebatch

            return rebatch(model, batch)
    elif isinstance(model, (str, Path)) and (weights is not None or data is not None or is_model_file(model)):
        return _lower_source(str(model), batch=batch, input_shape=input_shape, recipe=recipe,
                             skip_unsupported=skip_unsupported, seed=seed, weights=weights, data=data)
    if recipe is not None:
        from hwsim.compress.pipeline import compressed_graph

        return compressed_graph(model, recipe, batch=batch or 1, input_shape=input_shape,
                                skip_unsupported=skip_unsupported, seed=seed)
    from hwsim.lower import load_graph

    return load_graph(model, batch=batch, input_shape=input_shape, skip_unsupported=skip_unsupported)


def _lower_source(model: str, *, batch: int | None, input_shape: tuple[int, ...] | None, recipe: Any,
                  skip_unsupported: bool, seed: int, weights: str | Path | None, data: str | None) -> LayerGraph:
    """A user's model (``.pt``, or a zoo name with ``weights``/``data``) compressed (if asked) and lowered."""
    from hwsim.compress.pipeline import compressed_graph, lowering_input
    from hwsim.lower import lower
    from hwsim.sources import resolve_with_data

    inputs = resolve_with_data(model, weights=weights, data=data, input_shape=input_shape, batch=batch, seed=seed)
    source, split, shape = inputs.source, inputs.data, inputs.input_shape
    if recipe is not None:
        return compressed_graph(source.module, recipe, input_shape=shape, skip_unsupported=skip_unsupported,
                                seed=seed, name=source.name, data=split)
    return lower(source.module, input_shape=shape, name=source.name, skip_unsupported=skip_unsupported,
                 example_input=lowering_input(split, shape))


def evaluate_layer(layer: Layer, arch: ArchSpec, *, mapper: Mapper | None = None) -> LayerCounts:
    """Counts for one layer: MAC layers on the arch's engine, the rest on the vector unit.

    ``layer`` is taken at the hardware's widths (``resolve_layer``); the engine's counts then go
    through the hardware's datapath (``apply_datapath``: native-width MACs, passes for wider operands).
    """
    layer = resolve_layer(layer, arch)
    if not layer.op.has_macs:
        from hwsim.models.vector import evaluate_vector

        return evaluate_vector(layer, arch)
    engine = get_engine(arch.engine)
    run = clamp_to_datapath(layer, arch)
    mapping = mapper.map(run, arch) if mapper is not None else engine.default_mapping(run, arch)
    return apply_datapath(layer, arch, engine.evaluate(run, arch, mapping))


def layer_result(layer: Layer, counts: LayerCounts, arch: ArchSpec) -> LayerResult:
    """Price one layer's counts and pack them as a ``LayerResult``."""
    from hwsim.models.energy import price

    layer = resolve_layer(layer, arch)
    energy = price(counts, arch, cycles=counts.cycles)
    note = "free data movement (no compute)" if counts.detail("free_data_movement") else ""
    if counts.detail("essential_bits_known") == 0.0:
        note = NO_ESSENTIAL_BITS
    return LayerResult(
        name=layer.name, op=layer.op.value, macs=layer.macs, compute_cycles=counts.compute_cycles,
        stall_cycles=counts.stall_cycles, energy_pj=energy.total_pj, utilization=counts.utilization,
        clock_hz=arch.clock_hz, engine=counts.engine or arch.engine, active_pes=counts.active_pes,
        energy_by_level_pj=dict(energy.by_level_pj), energy_by_tensor_pj=dict(energy.by_tensor_pj),
        compute_energy_pj=energy.compute_pj, leakage_energy_pj=energy.leakage_pj,
        weight_bits=layer.weight_bits, act_bits=layer.act_bits, weight_density=layer.weight_density,
        sparsity=layer.sparsity.describe(), source=layer.source, note=note, phase=layer.phase, counts=counts,
        energy_items=tuple(energy.items),
    )


def simulate_graph(graph: LayerGraph, arch: ArchSpec, *, mapper: Mapper | None = None,
                   progress: Callable[[int, int, str], None] | None = None,
                   layer_cache: dict[Layer, LayerResult] | None = None) -> NetworkResult:
    """Run every layer of ``graph`` on ``arch`` in topological order.

    ``layer_cache`` (one dict per (arch, mapper)) reuses the result of an identical layer record, so
    searches that edit a few layers of a graph re-simulate only those.
    """
    from hwsim.models.energy import area_mm2

    layers = graph.layers()
    if not layers:
        raise ConfigError(f"graph {graph.name!r} has no layers: nothing to simulate")
    results = []
    for index, layer in enumerate(layers):
        cached = layer_cache.get(layer) if layer_cache is not None else None
        if cached is None:
            cached = layer_result(layer, evaluate_layer(layer, arch, mapper=mapper), arch)
            if layer_cache is not None:
                layer_cache[layer] = cached
        results.append(cached)
        if progress is not None:
            progress(index + 1, len(layers), layer.name)
    return NetworkResult(
        model=graph.name, arch=arch.name, layers=tuple(results), clock_hz=arch.clock_hz,
        peak_macs_per_cycle=arch.peak_macs_per_cycle, technology_nm=arch.technology_nm,
        area_by_component_mm2=dict(area_mm2(arch)),
        meta={"skipped": graph.meta.get("skipped", []), "notes": _network_notes(results)},
    )


def _network_notes(results: list[LayerResult]) -> list[str]:
    """Warnings that hold for some layers of a run, once each with how many layers they concern."""
    counts: dict[str, int] = {}
    for result in results:
        if result.note == NO_ESSENTIAL_BITS:
            counts[result.note] = counts.get(result.note, 0) + 1
    return [f"{note} ({n} layer{'s' * (n != 1)})" for note, n in counts.items()]


def simulate(model: Any, arch: str | Path | ArchSpec = "edge_tpu_like", *, batch: int | None = None,
             input_shape: tuple[int, ...] | None = None, recipe: Any = None, mapper: Mapper | None = None,
             technology_nm: float | None = None, clock_hz: float | None = None,
             skip_unsupported: bool = False, training: bool = False,
             progress: Callable[[int, int, str], None] | None = None, weights: str | Path | None = None,
             data: str | None = None) -> NetworkResult:
    """Simulate ``model`` on ``arch`` and return per-layer and total latency, energy, power, area.

    Parameters
    ----------
    model : LayerGraph, path to a saved graph (``.json``) or ``.onnx``, zoo name, or ``torch.nn.Module``.
    arch : preset name, YAML path or ``ArchSpec``.
    batch : batch size (``None``: a saved graph keeps its own, zoo models use 1).
    input_shape : input shape with the batch dim, for zoo/torch models.
    recipe : a compression recipe (path, dict or list of steps) applied before lowering.
    mapper : maps each MAC layer onto the arch; default is the engine's fixed-dataflow mapping.
    technology_nm, clock_hz : re-target the architecture before pricing.
    training : simulate one training step (forward, backward, update; ``hwsim.training``).
    weights, data : a state_dict for a zoo-name model; calibration data (``resolve_graph``).
    """
    if batch is not None and batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    from hwsim.models.energy import retarget

    spec = retarget(load_arch(arch), technology_nm=technology_nm, clock_hz=clock_hz)
    graph = resolve_graph(model, batch=batch, input_shape=input_shape, recipe=recipe,
                          skip_unsupported=skip_unsupported, weights=weights, data=data)
    if training:
        from hwsim.training import training_graph

        graph = training_graph(graph)
        result = simulate_graph(graph, spec, mapper=mapper, progress=progress)
        result.meta["gradient_elems"] = {layer.name: layer.output_elems for layer in graph.layers()
                                         if layer.phase == "backward_weight"}
        return result
    return simulate_graph(graph, spec, mapper=mapper, progress=progress)
