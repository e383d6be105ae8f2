"""Per-layer compression policies, applied to a ``LayerGraph`` without torch.

A ``Policy`` maps a compute layer (by module path, ``Layer.source``) to a ``LayerPolicy``: weight and
activation bits, a pruning structure and ratio. ``apply_policy`` edits the graph the way compressing the
torch model with ``policy_recipe(policy)`` and lowering it would: bits, channel counts, and the weight
densities, sparsity structures and masks that the torch side measured once per (layer, choice) into a
``LayerStats`` table (``hwsim.dse.layer_stats``). So a candidate costs a graph edit and a simulation,
not a compression and a ``torch.export``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph, Op, PackedMask, Sparsity

PRUNE_KINDS = ("none", "unstructured", "nm", "channel", "lowrank", "block")


@dataclass(frozen=True)
class LayerPolicy:
    """What one layer gets: bits (None keeps the layer's own) and one pruning choice."""

    weight_bits: int | None = None
    act_bits: int | None = None
    prune: str = "none"            # none | unstructured | nm | channel | lowrank | block
    sparsity: float = 0.0          # fraction removed (unstructured weights, or channels)
    budget: float = 1.0            # lowrank: fraction of the layer's weights the two SVD factors keep
    block: tuple[int, int] = (4, 4)  # block: (rows of K, cols of C/G*R*S) zeroed together
    n: int = 2                     # N:M pattern (prune == "nm")
    m: int = 4

    def __post_init__(self) -> None:
        if self.prune not in PRUNE_KINDS:
            raise ConfigError(f"prune must be one of {list(PRUNE_KINDS)}, got {self.prune!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if self.prune == "nm" and not 1 <= self.n <= self.m:
            raise ConfigError(f"N:M needs 1 <= n <= m, got {self.n}:{self.m}")
        object.__setattr__(self, "block", tuple(int(b) for b in self.block))
        if min(self.block) < 1:
            raise ConfigError(f"block must be two positive ints, got {self.block!r}")
        if not 0.0 < self.budget <= 1.0:
            raise ConfigError(f"lowrank budget must be in (0, 1], got {self.budget!r}")

    @property
    def mask_key(self) -> tuple[Any, ...]:
        """The weight-mask choice (what ``LayerStats`` is keyed by, with the weight bits)."""
        if self.prune == "unstructured" and self.sparsity > 0:
            return ("unstructured", round(self.sparsity, 6))
        if self.prune == "nm":
            return ("nm", self.n, self.m)
        if self.prune == "lowrank":
            return ("lowrank", round(self.budget, 6))
        if self.prune == "block" and self.sparsity > 0:
            return ("block", self.block, round(self.sparsity, 6))
        return ("none",)

    def describe(self) -> str:
        parts = [f"w{self.weight_bits or '-'}a{self.act_bits or '-'}"]
        if self.prune == "unstructured" and self.sparsity > 0:
            parts.append(f"prune {self.sparsity:.0%}")
        elif self.prune == "nm":
            parts.append(f"{self.n}:{self.m}")
        elif self.prune == "channel" and self.sparsity > 0:
            parts.append(f"channels -{self.sparsity:.0%}")
        elif self.prune == "lowrank":
            parts.append(f"SVD {self.budget:.0%} of weights")
        elif self.prune == "block" and self.sparsity > 0:
            parts.append(f"{self.block[0]}x{self.block[1]} blocks -{self.sparsity:.0%}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"weight_bits": self.weight_bits, "act_bits": self.act_bits, "prune": self.prune}
        if self.prune in ("unstructured", "channel", "block"):
            out["sparsity"] = self.sparsity
        if self.prune == "block":
            out["block"] = list(self.block)
        if self.prune == "nm":
            out.update(n=self.n, m=self.m)
        if self.prune == "lowrank":
            out["budget"] = self.budget
        return out


@dataclass(frozen=True)
class Policy:
    """A per-layer policy; layers not named keep what they have."""

    layers: Mapping[str, LayerPolicy] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {path: lp.to_dict() for path, lp in self.layers.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> "Policy":
        return cls({path: LayerPolicy(**dict(values)) for path, values in data.items()})


def channel_ratio(lp: LayerPolicy | None) -> float:
    """The fraction of output channels ``lp`` removes (0 unless it prunes channels)."""
    return lp.sparsity if lp is not None and lp.prune == "channel" else 0.0


def weight_key(path: str, lp: LayerPolicy, in_ratio: float = 0.0) -> tuple[Any, ...]:
    """``LayerStats.weights`` key: the layer, its mask and bits, its own and its producer's channel removal."""
    return (path, lp.mask_key, lp.weight_bits, round(channel_ratio(lp), 6), round(in_ratio, 6))


def channel_kept(channels: int, ratio: float) -> int:
    """Channels kept when removing ``ratio`` of them (``hwsim.compress.channel_prune.keep_count``, multiple 1)."""
    return min(channels, max(1, int(round(channels * (1.0 - ratio)))))


@dataclass
class LayerStats:
    """Facts the torch side measured once per layer and choice (``hwsim.compress.policy_stats``).

    ``weights[weight_key(...)]`` is ``(density, Sparsity, PackedMask | None)`` of the weight after that
    channel removal, pruning and quantization (quantization rounds small weights to zero: real data);
    ``acts[(path, act_bits)]`` is ``{"act_density", "act_essential_bits"}`` of the quantized input,
    measured on the uncompressed model's calibration inputs; ``consumers[producer] = consumer`` for the
    layers whose output channels can be removed.
    """

    weights: dict[tuple[Any, ...], tuple[float, Sparsity, PackedMask | None]] = field(default_factory=dict)
    acts: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    consumers: dict[str, str] = field(default_factory=dict)


def _by_source(graph: LayerGraph) -> dict[str, Layer]:
    return {(layer.source or layer.name): layer for layer in graph.compute_layers()}


def channel_consumers(graph: LayerGraph, name: str) -> tuple[list[str], list[str]] | None:
    """(depthwise layers in between, the one consumer MAC layer) a producer's channels flow into.

    Mirrors ``hwsim.compress.channel_prune``: the output must reach exactly one dense conv/linear
    through channel-wise layers only (pool, depthwise); otherwise ``None`` (not prunable).
    """
    between: list[str] = []
    node = name
    while True:
        users = list(graph.graph.successors(node))
        if len(users) != 1 or len(list(graph.graph.predecessors(users[0]))) != 1:
            return None
        node = users[0]
        layer = graph[node]
        if layer.op is Op.DEPTHWISE:
            between.append(node)
        elif layer.op is Op.POOL:
            between.append(node)
        elif layer.op in (Op.CONV, Op.LINEAR) and layer.G == 1:
            return between, [node]
        elif layer.op is Op.RESHAPE:
            continue
        else:
            return None


def apply_policy(graph: LayerGraph, policy: Policy, stats: LayerStats | None = None) -> LayerGraph:
    """The graph as compressing with ``policy_recipe(policy)`` and lowering would produce it.

    Without ``stats``, densities follow the policy's nominal ratios and no masks are attached (a
    statistical estimate); with them, each layer gets the measured density, structure and mask.
    Activation statistics measured at lowering (``act_density`` and essential bits of unquantized
    layers) stay the uncompressed model's: pruning upstream shifts them by a few per cent, which only
    re-lowering the compressed model would measure.
    """
    by_source = _by_source(graph)
    if unknown := sorted(set(policy.layers) - set(by_source)):
        raise ConfigError(f"policy names layer(s) not in graph {graph.name!r}: {unknown[:5]}")
    stats = stats or LayerStats()
    in_ratio = {stats.consumers.get(path, ""): channel_ratio(lp) for path, lp in policy.layers.items()
                if channel_ratio(lp) > 0}
    edits: dict[str, dict[str, Any]] = {}
    for path, lp in policy.layers.items():
        if channel_ratio(lp) > 0:
            _channel_edit(graph, by_source[path], lp, edits)
    for path in sorted(policy.layers.keys() | (in_ratio.keys() - {""})):
        lp = policy.layers.get(path, LayerPolicy())
        layer = by_source[path]
        change = edits.setdefault(layer.name, {})
        facts = _weight_facts(weight_key(path, lp, in_ratio.get(path, 0.0)), lp, stats)
        change.update(facts)
        if lp.weight_bits is not None:
            change["weight_bits"] = lp.weight_bits
        if lp.act_bits is not None:
            change["act_bits"] = lp.act_bits
            if (path, lp.act_bits) in stats.acts:
                change.update(stats.acts[(path, lp.act_bits)])
        if lp.weight_bits is not None or lp.act_bits is not None:
            change["number_format"] = "int"
            set_now = {name for name, bits in (("weight_bits", lp.weight_bits), ("act_bits", lp.act_bits))
                       if bits is not None}
            change["native_bits"] = tuple(f for f in layer.native_bits if f not in set_now)
        if lp.prune != "lowrank" and (tags := _tags(lp)):
            change["compression"] = tuple(change.get("compression", layer.compression)) + tags
    out = graph.map_layers(lambda layer: _edited(layer, edits.get(layer.name)))
    for path, lp in policy.layers.items():
        if lp.prune == "lowrank":
            key = weight_key(path, lp, in_ratio.get(path, 0.0))
            _factorize(out, by_source[path].name, lp, stats.weights.get(key))
    return out


def _edited(layer: Layer, change: dict[str, Any] | None) -> Layer:
    if not change:
        return layer
    # the edit changes this layer's weights: their measured essential bits no longer hold
    edited = layer.with_changes(**change, weight_essential_hist=())
    mask = edited.weight_mask
    if mask is not None and tuple(mask.shape) != (edited.K, edited.weight_elems // max(edited.K, 1)):
        edited = edited.with_changes(weight_mask=None)   # measured on the full shape: no longer fits
    return edited


def svd_rank(layer: Layer, budget: float) -> int:
    """The rank ``hwsim.compress.lowrank_math.choose_rank`` picks for a parameter ``budget`` of ``layer``."""
    rows, cols = layer.K, layer.weight_elems // layer.K
    chosen = int(math.floor(float(budget) * (rows * cols) / (rows + cols)))
    return max(1, min(chosen, min(rows, cols)))


def _factorize(graph: LayerGraph, name: str, lp: LayerPolicy, facts: Any) -> None:
    """Replace layer ``name`` by its two SVD factors (RxS conv with r filters, then 1x1; or two linears)."""
    layer = graph[name]
    rank = svd_rank(layer, lp.budget)
    tags = (*layer.compression, f"svd(r={rank})", *_tags(lp))
    common = {"weight_density": 1.0, "sparsity": Sparsity(), "weight_mask": None, "compression": tags}
    first = layer.with_changes(name=f"{name}.0", source=f"{layer.source or name}.0", K=rank, **common)
    second_shape = ({"R": 1, "S": 1, "stride": (1, 1), "dilation": (1, 1), "padding": (0, 0),
                     "input_size": (layer.P, layer.Q)} if layer.op is Op.CONV else {})   # reads the first factor's output
    second = layer.with_changes(name=f"{name}.1", source=f"{layer.source or name}.1", C=rank, **second_shape, **common)
    if facts is not None:
        (d0, s0, m0), (d1, s1, m1) = facts
        first = first.with_changes(weight_density=d0, sparsity=s0, weight_mask=m0)
        second = second.with_changes(weight_density=d1, sparsity=s1, weight_mask=m1)
    inputs, outputs = graph.predecessors(name), list(graph.graph.successors(name))
    graph.graph.remove_node(name)
    graph.add_layer(first, inputs=inputs)
    graph.add_layer(second, inputs=[first.name])
    for dst in outputs:
        graph.graph.add_edge(second.name, dst)


def _weight_facts(key: tuple[Any, ...], lp: LayerPolicy, stats: LayerStats) -> dict[str, Any]:
    if lp.prune == "lowrank":
        return {}
    if key in stats.weights:
        density, sparsity, mask = stats.weights[key]
        return {"weight_density": density, "sparsity": sparsity, "weight_mask": mask}
    if lp.prune == "unstructured" and lp.sparsity > 0:
        return {"weight_density": 1.0 - lp.sparsity, "sparsity": Sparsity("unstructured"), "weight_mask": None}
    if lp.prune == "nm":
        return {"weight_density": lp.n / lp.m, "sparsity": Sparsity("n:m", n=lp.n, m=lp.m), "weight_mask": None}
    if lp.prune == "block" and lp.sparsity > 0:
        return {"weight_density": 1.0 - lp.sparsity, "sparsity": Sparsity("block", block=lp.block), "weight_mask": None}
    return {}


def _channel_edit(graph: LayerGraph, layer: Layer, lp: LayerPolicy, edits: dict[str, dict[str, Any]]) -> None:
    chain = channel_consumers(graph, layer.name)
    if chain is None or layer.G != 1:
        raise ConfigError(f"layer {layer.source or layer.name!r}: channel pruning needs a dense layer whose "
                          "output feeds exactly one conv/linear (through pooling or depthwise layers only)")
    kept = channel_kept(layer.K, lp.sparsity)
    edits.setdefault(layer.name, {}).update(
        K=kept, compression=(*layer.compression, f"l1_filter_prune({kept}/{layer.K})"))
    between, (consumer,) = chain
    for name in between:   # channel-wise layers: every channel count follows the producer
        mid = graph[name]
        edits.setdefault(name, {}).update(K=kept, C=kept, G=1 if mid.G == 1 else kept)
    target = graph[consumer]
    per_channel = target.C // layer.K if target.op is Op.LINEAR else 1   # flattened spatial positions
    edits.setdefault(consumer, {}).update(
        C=kept * per_channel, compression=(*target.compression, f"l1_filter_prune(inputs {kept}/{layer.K})"))


def _tags(lp: LayerPolicy) -> tuple[str, ...]:
    """The ``Layer.compression`` entries the recipe methods write (channel removal is tagged separately)."""
    tags = []
    if lp.prune == "unstructured" and lp.sparsity > 0:
        tags.append(f"magnitude_prune({lp.sparsity:g},layer)")
    if lp.prune == "nm":
        tags.append(f"nm_prune({lp.n}:{lp.m})")
    if lp.prune == "block" and lp.sparsity > 0:
        tags.append(f"block_prune({lp.block[0]}x{lp.block[1]},{lp.sparsity:g})")
    if lp.weight_bits is not None or lp.act_bits is not None:
        tags.append(f"mixed_precision(w{lp.weight_bits or '-'}a{lp.act_bits or '-'})")
    return tuple(tags)


def policy_recipe(policy: Policy, *, name: str = "autocompress", model: str | None = None,
                  description: str = "") -> dict[str, Any]:
    """A recipe (``hwsim compress --recipe``) that applies ``policy`` to the torch model exactly.

    Order: channel removal, weight masks, then quantization (which keeps pruned zeros exact).
    """
    steps: list[dict[str, Any]] = []

    def grouped(select, make) -> None:
        groups: dict[Any, list[str]] = {}
        for path, lp in policy.layers.items():
            if (key := select(lp)) is not None:
                groups.setdefault(key, []).append(path)
        for key, paths in sorted(groups.items(), key=lambda kv: str(kv[0])):
            steps.append({**make(key), "layers": sorted(paths)})

    grouped(lambda lp: lp.sparsity if lp.prune == "channel" and lp.sparsity > 0 else None,
            lambda ratio: {"method": "l1_filter_prune", "ratio": ratio})
    grouped(lambda lp: lp.sparsity if lp.prune == "unstructured" and lp.sparsity > 0 else None,
            lambda ratio: {"method": "magnitude_prune", "sparsity": ratio, "scope": "layer"})
    grouped(lambda lp: (lp.n, lp.m) if lp.prune == "nm" else None,
            lambda nm: {"method": "nm_prune", "n": nm[0], "m": nm[1]})
    grouped(lambda lp: (lp.block, lp.sparsity) if lp.prune == "block" and lp.sparsity > 0 else None,
            lambda key: {"method": "block_prune", "block": list(key[0]), "sparsity": key[1]})
    grouped(lambda lp: lp.budget if lp.prune == "lowrank" else None,
            lambda budget: {"method": "svd", "budget": budget})

    def modules(path: str, lp: LayerPolicy) -> list[str]:   # SVD turns a layer into path.0 and path.1
        return [f"{path}.0", f"{path}.1"] if lp.prune == "lowrank" else [path]

    weight_bits = {m: lp.weight_bits for p, lp in sorted(policy.layers.items()) if lp.weight_bits is not None
                   for m in modules(p, lp)}
    act_bits = {m: lp.act_bits for p, lp in sorted(policy.layers.items()) if lp.act_bits is not None
                for m in modules(p, lp)}
    if weight_bits or act_bits:
        step: dict[str, Any] = {"method": "mixed_precision", "layers": sorted(weight_bits.keys() | act_bits.keys())}
        if weight_bits:
            step["weight_bits"] = weight_bits
        if act_bits:
            step["act_bits"] = act_bits
        steps.append(step)
    recipe: dict[str, Any] = {"name": name, "steps": steps}
    if model:
        recipe["model"] = model
    if description:
        recipe["description"] = description
    return recipe


def uniform_policy(paths: Iterable[str], **choice: Any) -> Policy:
    """The same ``LayerPolicy(**choice)`` for every layer in ``paths``."""
    lp = LayerPolicy(**choice)
    return Policy({path: lp for path in paths})
