"""The ``torch.export`` walker behind ``hwsim.lower.lower`` (see that module for the lowering rules)."""

from __future__ import annotations

import copy
import math
import operator
import warnings
from typing import Any, Callable

import torch
from torch import fx, nn

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.interop.torch_rules import ALIAS_OPS, RULES, Ctx
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.lower import ACCIDENTAL_ZEROS, META_KEYS, weight_facts

_COLLAPSE = {nn.LocalResponseNorm: Op.NORM}  # modules lowered as one layer whatever ops they use
_MULTI_OP_MODULES = (nn.MultiheadAttention, nn.RNNBase, nn.Transformer, nn.TransformerEncoderLayer,
                     nn.TransformerDecoderLayer)


def _example(model: nn.Module, input_shape, example_input, meta: bool) -> tuple:
    if example_input is None:
        gen = torch.Generator().manual_seed(0)
        example_input = torch.randn(tuple(int(s) for s in input_shape), generator=gen)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if meta:
        args = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    return args


def _meta_copy(model: nn.Module) -> nn.Module:
    if all(t.is_meta for t in model.state_dict().values()):
        return model
    clone = copy.deepcopy(model)
    return clone.to("meta")


def lower_module(model: nn.Module, *, input_shape, example_input, name, skip_unsupported, keep_masks,
                 meta, calibration=None, profile: bool = True) -> LayerGraph:
    """Export ``model`` and walk its ATen graph into a LayerGraph (operand statistics from
    ``calibration``, default the example input, unless ``meta`` or ``profile=False``)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"lower: expected a torch.nn.Module, got {type(model).__name__}")
    model = _meta_copy(model) if meta else model
    args = _example(model, input_shape, example_input, meta)
    # the profile runs before the export: its activations are freed before the export's working set
    # grows, so the two peaks do not stack (ResNet-18: 438 -> 395 MB peak RSS); a profile failure is
    # raised after the export, as if it had run second, so an export error keeps its one-line message
    profile_error: Exception | None = None
    stats, calib_meta = {}, None
    if profile and not meta:
        try:
            stats, calib_meta = _profile(model, args, calibration, example_input)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - re-raised below unless the export explains it
            profile_error = err
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # torch 2.13 warns on every export (LeafSpec) and when nn.RNN modules refresh _flat_weights
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message="The tensor attribute")
            ep = torch.export.export(model, args)
    except Exception as err:  # torch raises many types; re-raise as one clear message
        raise UnsupportedOpError(f"torch.export failed for {type(model).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
    finally:
        model.train(was_training)
    if profile_error is not None:
        raise profile_error
    shape = tuple(args[0].shape) if isinstance(args[0], torch.Tensor) else None
    walker = _Walker(model, ep, name=name or type(model).__name__, input_shape=shape,
                     skip_unsupported=skip_unsupported, keep_masks=keep_masks, profile=stats)
    graph = walker.run()
    if calib_meta is not None:
        graph.meta["calibration"] = {**calib_meta, "layers_profiled": sum(
            1 for layer in graph.layers() if layer.act_essential_hist)}
    return graph


def _profile(model: nn.Module, args: tuple, calibration, example_input) -> tuple[dict, dict | None]:
    """Per-module operand statistics on the calibration batch, and what that batch was."""
    from hwsim.interop.torch_profile import operand_profile

    if calibration is not None:
        sample, source = calibration, "calibration batch"
    elif len(args) == 1 and isinstance(args[0], torch.Tensor):
        sample = args[0]
        source = "example input" if example_input is not None else "synthetic N(0, 1) input, seed 0"
    else:
        return {}, None                      # several inputs: no single batch to profile with
    if not isinstance(sample, torch.Tensor):
        raise ConfigError(f"lower: the calibration batch must be a tensor, got {type(sample).__name__}")
    paths = {path for path, _ in model.named_modules()}
    return operand_profile(model, sample, paths), {"source": source, "batch": int(sample.shape[0])}


class _Walker:
    def __init__(self, model: nn.Module, ep, *, name: str, input_shape, skip_unsupported: bool,
                 keep_masks: bool, profile: dict[str, dict[str, Any]] | None = None) -> None:
        self.model, self.ep = model, ep
        self.profile = profile or {}                   # module path -> measured operand statistics
        self.skip_unsupported, self.keep_masks = skip_unsupported, keep_masks
        self.graph = LayerGraph(name, input_shape=input_shape,
                                meta={"frontend": "torch.export", "skipped": []})
        self.prod: dict[str, tuple[str, ...]] = {}     # fx node -> producing layer names
        self.const: dict[str, Any] = {}                # fx node -> constant tensor (None if unknown)
        self.used_names: set[str] = set()
        self.groups: dict[str, dict[str, Any]] = {}    # collapsed-module path -> {inputs, last, op}
        self.node_group: dict[str, str] = {}
        self.modules = dict(model.named_modules())
        sig = ep.graph_signature
        self.param_of = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                         **sig.inputs_to_lifted_tensor_constants}

    # ----- driving ---------------------------------------------------------------------------
    def run(self) -> LayerGraph:
        nodes = list(self.ep.graph.nodes)
        self._plan_groups(nodes)
        for node in nodes:
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "get_attr":
                self.const[node.name] = None
            elif node.op == "output":
                outs = _flat_nodes(node.args[0])
                self.graph.meta["outputs"] = sorted({p for a in outs for p in self.prod.get(a.name, ())})
        return self.graph

    def _placeholder(self, node: fx.Node) -> None:
        fqn = self.param_of.get(node.target)
        if fqn is None:
            self.prod[node.name] = ()
            return
        value = self.ep.state_dict.get(fqn)
        self.const[node.name] = value if value is not None else self.ep.constants.get(fqn)

    def _call(self, node: fx.Node) -> None:
        group = self._group_of(node)
        if group is not None:
            return self._collapse(node, group)
        inputs = _flat_nodes((node.args, node.kwargs))
        if node.target is operator.getitem:
            src = node.args[0]
            if src.name in self.const:
                self.const[node.name] = _fold(node, self.const)
            else:
                self.prod[node.name] = self.prod[src.name]
            return
        if all(a.name in self.const for a in inputs):
            self.const[node.name] = _fold(node, self.const)
            return
        key = _op_key(node.target)
        if key in ALIAS_OPS:
            self.prod[node.name] = self.producers(inputs)
            return
        rule: Callable | None = RULES.get(key)
        if rule is None:
            return self._unsupported(node, key, inputs)
        self.prod[node.name] = rule(Ctx(self, node, _normalized(node)))

    def _unsupported(self, node: fx.Node, key: str, inputs: list[fx.Node]) -> None:
        path = self.module_path(node)
        if not self.skip_unsupported:
            raise UnsupportedOpError(f"cannot lower op {key!r} (node {node.name!r}) in module "
                                     f"{path or '<top level>'!r}; pass skip_unsupported=True to skip it")
        self.graph.meta["skipped"].append({"op": key, "module": path})
        self.prod[node.name] = self.producers(inputs)

    # ----- collapsed modules (e.g. LocalResponseNorm) ----------------------------------------
    def _plan_groups(self, nodes: list[fx.Node]) -> None:
        for node in nodes:
            for path, _ in _stack(node):
                module = self.modules.get(path)
                op = next((op for cls, op in _COLLAPSE.items() if isinstance(module, cls)), None)
                if op is not None:
                    entry = self.groups.setdefault(path, {"inputs": [], "last": None, "op": op, "nodes": set()})
                    entry["last"] = node.name
                    entry["nodes"].add(node.name)
                    self.node_group[node.name] = path
                    break

    def _group_of(self, node: fx.Node) -> str | None:
        return self.node_group.get(node.name)

    def _collapse(self, node: fx.Node, path: str) -> None:
        entry = self.groups[path]
        for arg in _flat_nodes((node.args, node.kwargs)):
            if arg.name not in entry["nodes"] and arg.name not in self.const:
                entry["inputs"].extend(p for p in self.prod[arg.name] if p not in entry["inputs"])
        self.prod[node.name] = ()
        if node.name == entry["last"]:
            dims = out_dims(shape_of(node))
            layer = self.emit(node, entry["op"], entry["inputs"], base=path, C=dims["K"], **dims)
            self.prod[node.name] = (layer,)

    # ----- helpers used by the rules ---------------------------------------------------------
    def producers(self, nodes: list[fx.Node]) -> tuple[str, ...]:
        out: list[str] = []
        for arg in nodes:
            for name in self.prod.get(arg.name, ()):
                if name not in out:
                    out.append(name)
        return tuple(out)

    def module_path(self, node: fx.Node) -> str:
        stack = _stack(node)
        return stack[-1][0] if stack else ""

    def layer_name(self, node: fx.Node, short: str, base: str | None = None) -> str:
        if base is None:
            path = self.module_path(node)
            module = self.modules.get(path)
            own = (path and module is not None and type(module).__module__.startswith("torch.nn.")
                   and not isinstance(module, (_MULTI_OP_MODULES + (nn.Sequential, nn.ModuleList))))
            base = path if own else (f"{path}.{short}" if path else short)
        name, index = base, 0
        while name in self.used_names:
            index += 1
            name = f"{base}_{index}"
        self.used_names.add(name)
        return name

    def emit(self, node: fx.Node, op: Op, inputs, *, short: str | None = None, base: str | None = None,
             weight: Any = None, module_path: str | None = None, **dims: Any) -> str:
        """Add one layer (with weight facts and hwsim_meta) and return its name."""
        path = self.module_path(node) if module_path is None else module_path
        name = self.layer_name(node, short or op.value, base)
        fields: dict[str, Any] = {k: v for k, v in dims.items() if v is not None}
        if weight is not None:
            fields.update(self._weight_fields(weight, fields.get("K", 1)))
            fields.update(self.profile.get(path, {}))  # measured; hwsim_meta annotations still win
        layer = Layer(name=name, op=op, source=path, **fields)
        layer, tiles = self._apply_meta(layer, path)
        if tiles and layer.op in (Op.CONV, Op.DEPTHWISE):
            return self._emit_tiled(layer, list(inputs), tiles)
        self.graph.add_layer(layer, inputs=list(inputs))
        return name

    def _emit_tiled(self, layer: Layer, inputs: list[str], tiles: dict[str, Any]) -> str:
        """SBNet's gather -> conv over the active tiles -> scatter (``hwsim.interop.tiles``)."""
        from hwsim.interop.tiles import tiled_layers

        previous = inputs
        for part in tiled_layers(layer, tuple(tiles["block"]), int(tiles["active"])):
            self.used_names.add(part.name)
            self.graph.add_layer(part, inputs=previous)
            previous = [part.name]
        return previous[0]

    def _weight_fields(self, weight: Any, k_out: int) -> dict[str, Any]:
        if not isinstance(weight, torch.Tensor) or weight.is_meta or weight.numel() == 0:
            return {}
        weight = weight.detach()
        if weight.numel() - int(torch.count_nonzero(weight)) <= ACCIDENTAL_ZEROS * weight.numel():
            return {}                                   # dense: skip the mask analysis
        mask = (weight != 0).reshape(weight.shape[0], -1).cpu().numpy()
        density, sparsity, packed = weight_facts(mask, keep_mask=self.keep_masks)
        return {"weight_density": density, "sparsity": sparsity, "weight_mask": packed}

    def _apply_meta(self, layer: Layer, path: str) -> tuple[Layer, dict[str, Any] | None]:
        """The layer with its modules' hwsim_meta applied, and the SBNet ``tiles`` annotation if any."""
        merged: dict[str, Any] = {}
        parts = path.split(".") if path else []
        for depth in range(len(parts) + 1):
            module = self.modules.get(".".join(parts[:depth]))
            extra = getattr(module, "hwsim_meta", None) if module is not None else None
            if extra:
                if not isinstance(extra, dict) or (bad := sorted(set(extra) - set(META_KEYS))):
                    raise ConfigError(f"module {'.'.join(parts[:depth]) or '<root>'!r}: hwsim_meta has unknown "
                                      f"key(s) {bad if isinstance(extra, dict) else extra!r}; valid: {list(META_KEYS)}")
                labels = merged.get("compression", []) + [c for c in extra.get("compression", [])
                                                          if c not in merged.get("compression", [])]
                merged.update(extra)
                if labels:
                    merged["compression"] = labels
        merged["native_bits"] = tuple(f for f in ("weight_bits", "act_bits", "out_bits") if f not in merged)
        if not layer.has_weights:
            merged.pop("weight_bits", None)
        if "compression" in merged:
            merged["compression"] = tuple(str(c) for c in merged["compression"])
        tiles = merged.pop("tiles", None)
        try:
            return layer.with_changes(**merged), tiles
        except (ValueError, TypeError) as err:
            raise ConfigError(f"module {path!r}: invalid hwsim_meta ({err})") from None


# ----- module-level helpers ------------------------------------------------------------------
def _stack(node: fx.Node) -> list[tuple[str, str]]:
    stack = node.meta.get("nn_module_stack") or {}
    return [(path, kind) for path, kind in stack.values()]


def _flat_nodes(value: Any) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(value, found.append)
    return found


def _op_key(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(packet).removeprefix("aten.")
    return getattr(target, "__name__", str(target))


def _normalized(node: fx.Node) -> dict[str, Any]:
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return {f"arg{i}": a for i, a in enumerate(node.args)} | dict(node.kwargs)
    out: dict[str, Any] = {}
    for index, arg in enumerate(schema.arguments):
        if index < len(node.args) and not arg.kwarg_only:
            out[arg.name] = node.args[index]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
    return out


def _fold(node: fx.Node, const: dict[str, Any]) -> Any:
    values = fx.node.map_arg((node.args, node.kwargs), lambda a: const.get(a.name))
    if any(v is None for v in _flat_values(values)):
        return None
    try:
        with torch.no_grad():
            return node.target(*values[0], **values[1])
    except Exception:  # constant folding is best effort; an unknown constant means "no weight facts"
        return None


def _flat_values(values: Any) -> list[Any]:
    out: list[Any] = []
    fx.node.map_aggregate(values, out.append)
    return out


def shape_of(node: Any) -> tuple[int, ...]:
    """Static shape of an fx node's (first) tensor value."""
    val = node.meta.get("val") if isinstance(node, fx.Node) else node
    if isinstance(val, (list, tuple)):
        val = val[0]
    return tuple(int(s) for s in val.shape)


def out_dims(shape: tuple[int, ...]) -> dict[str, int]:
    """Map a tensor shape to (N, K, P, Q): (n,c,h,w), (batch, tokens, features), (batch, features), ..."""
    s = [max(int(v), 1) for v in shape]
    if len(s) == 0:
        return {"N": 1, "K": 1, "P": 1, "Q": 1}
    if len(s) == 1:
        return {"N": 1, "K": s[0], "P": 1, "Q": 1}
    if len(s) == 2:
        return {"N": s[0], "K": s[1], "P": 1, "Q": 1}
    if len(s) == 3:
        return {"N": s[0], "K": s[2], "P": s[1], "Q": 1}
    return {"N": s[0], "K": s[1], "P": s[2], "Q": int(math.prod(s[3:]))}


__all__ = ["lower_module", "shape_of", "out_dims"]
