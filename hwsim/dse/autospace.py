"""The search space of a per-layer compression policy, as YAML or Python, with per-engine defaults.

::

    layers: ["*"]                 # module-path globs of the compute layers searched
    exclude: []
    keep_first_last: true         # the first and last compute layers stay as they are
    group_by: layer               # or an int: layers sharing the first N path components share a choice
    weight_bits: [2, 4, 8]
    act_bits: [8]                 # [] leaves activations unquantized
    prune: [none, "unstructured:0.5", "nm:2:4", "channel:0.25", "lowrank:0.5", "block:4x4:0.5"]

Defaults follow what the engine can exploit (bits on bit-serial units, N:M on N:M arrays,
unstructured sparsity on skipping engines, channels on dense arrays).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwsim.dse.policy import LayerPolicy
from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph, Op


def parse_prune(choice: str) -> dict[str, Any]:
    """``"none"``, ``"unstructured:0.5"``, ``"nm:2:4"`` or ``"channel:0.25"`` as ``LayerPolicy`` fields."""
    parts = str(choice).split(":")
    try:
        if parts == ["none"]:
            return {"prune": "none"}
        if parts[0] in ("unstructured", "channel") and len(parts) == 2:
            return {"prune": parts[0], "sparsity": float(parts[1])}
        if parts[0] == "nm" and len(parts) == 3:
            return {"prune": "nm", "n": int(parts[1]), "m": int(parts[2])}
        if parts[0] == "lowrank" and len(parts) == 2:
            return {"prune": "lowrank", "budget": float(parts[1])}
        if parts[0] == "block" and len(parts) == 3 and "x" in parts[1]:
            rows, cols = parts[1].split("x")
            return {"prune": "block", "block": (int(rows), int(cols)), "sparsity": float(parts[2])}
    except ValueError:
        pass
    raise ConfigError(f"prune choice {choice!r}: expected none, unstructured:<ratio>, nm:<n>:<m>, channel:<ratio>, "
                      "lowrank:<weight budget> or block:<rows>x<cols>:<ratio>")


class PolicySpace(BaseModel):
    """Validated search space (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    layers: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    keep_first_last: bool = True
    group_by: str | int = "layer"
    weight_bits: list[int] = Field(default_factory=lambda: [8])
    act_bits: list[int] = Field(default_factory=list)
    prune: list[str] = Field(default_factory=lambda: ["none"])

    @field_validator("weight_bits", "act_bits")
    @classmethod
    def _bits(cls, value: list[int]) -> list[int]:
        if bad := [b for b in value if not 2 <= int(b) <= 16]:
            raise ValueError(f"bit widths must be in [2, 16], got {bad}")
        return sorted(set(int(b) for b in value))

    @field_validator("prune")
    @classmethod
    def _prune(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one prune choice (e.g. none)")
        for choice in value:
            LayerPolicy(**parse_prune(choice))   # raises on a bad ratio or pattern
        return list(dict.fromkeys(str(v) for v in value))

    @field_validator("group_by")
    @classmethod
    def _group(cls, value: str | int) -> str | int:
        if value != "layer" and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"group_by must be 'layer' or a positive int, got {value!r}")
        return value


def default_space(arch: Any) -> PolicySpace:
    """What the engine of ``arch`` can turn into speed or energy (module docstring)."""
    native = int(arch.compute.weight_bits)
    engine = arch.engine
    if engine == "bitserial":
        return PolicySpace(weight_bits=[2, 4, 6, 8], act_bits=[4, 6, 8], prune=["none"])
    if engine == "sparse":
        sparse = arch.sparse
        if sparse is not None and sparse.structured_n and sparse.structured_m:
            return PolicySpace(weight_bits=[native], prune=["none", f"nm:{sparse.structured_n}:{sparse.structured_m}"])
        return PolicySpace(weight_bits=[native], prune=["none", "unstructured:0.3", "unstructured:0.5",
                                                        "unstructured:0.7", "unstructured:0.8", "unstructured:0.9"])
    if engine == "binary":
        raise ConfigError(f"{arch.name}: autocompress has no policy space for binary engines (they run binarized "
                          "layers); rank the binarize recipes with `hwsim rank` instead")
    return PolicySpace(weight_bits=[native], prune=["none", "channel:0.25", "channel:0.5", "lowrank:0.5"])


def load_space(source: str | Path | dict[str, Any] | PolicySpace | None, arch: Any) -> PolicySpace:
    """A ``PolicySpace`` from a YAML path, a dict, or ``None`` for the engine's default."""
    if source is None:
        return default_space(arch)
    if isinstance(source, PolicySpace):
        return source
    origin = "space"
    if isinstance(source, (str, Path)):
        import yaml

        origin = Path(source).name
        try:
            source = yaml.safe_load(Path(source).read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{origin}: not valid YAML ({err})") from None
    try:
        return PolicySpace.model_validate(source or {})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ConfigError(f"{origin}: {where}: {first['msg']}") from None


def searched_layers(graph: LayerGraph, space: PolicySpace) -> list[Layer]:
    """The weight layers the space searches, in model order."""
    layers = [layer for layer in graph.compute_layers() if layer.has_weights]
    if space.keep_first_last and len(layers) > 2:
        layers = layers[1:-1]
    path = lambda layer: layer.source or layer.name  # noqa: E731
    return [layer for layer in layers
            if any(fnmatch.fnmatchcase(path(layer), g) for g in space.layers)
            and not any(fnmatch.fnmatchcase(path(layer), g) for g in space.exclude)]


def layer_groups(layers: list[Layer], space: PolicySpace) -> dict[str, list[str]]:
    """Group name -> module paths sharing one choice."""
    groups: dict[str, list[str]] = {}
    for layer in layers:
        path = layer.source or layer.name
        key = path if space.group_by == "layer" else ".".join(path.split(".")[: int(space.group_by)])
        groups.setdefault(key, []).append(path)
    return groups


def valid_prune_choices(layer: Layer, choices: list[str], channel_prunable: set[str]) -> list[str]:
    """The choices that apply to ``layer`` (N:M needs the reduction length to divide; channels need a chain)."""
    out = []
    for choice in choices:
        fields = parse_prune(choice)
        if fields["prune"] == "nm" and (layer.weight_elems // layer.K) % fields["m"]:
            continue
        if fields["prune"] == "nm" and layer.op is Op.DEPTHWISE:
            continue
        if fields["prune"] == "channel" and (layer.source or layer.name) not in channel_prunable:
            continue
        if fields["prune"] == "lowrank" and (layer.op not in (Op.CONV, Op.LINEAR) or layer.G != 1):
            continue
        if fields["prune"] == "block" and layer.op is Op.DEPTHWISE:
            continue
        out.append(choice)
    return out
