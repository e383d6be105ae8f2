"""The layer-graph IR: the only thing the hardware side sees.

A ``Layer`` describes one operator in the loop-nest vocabulary of Timeloop/ZigZag
(``N K C P Q R S G``; ``C`` and ``K`` are *total* channels, split into ``G`` groups).
A ``LayerGraph`` wraps a ``networkx.DiGraph`` of layers with data-dependency edges and
round-trips exactly through JSON (weight masks as base64 bit-packed arrays). The DiGraph is built on
first use of ``LayerGraph.graph``: loading a saved graph and simulating it needs only the layers in
order, so ``hwsim simulate graph.json`` never imports networkx (~0.1 s).

This module imports nothing else from hwsim and never imports torch.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

IR_VERSION = 1
PHASES = ("forward", "backward_data", "backward_weight", "update")
# a saved layer must state its loop bounds: a missing K silently defaulting to 1 would lose MACs
REQUIRED_LAYER_FIELDS = ("name", "op", "N", "K", "C", "P", "Q", "R", "S", "G")


class Op(str, Enum):
    """Operator kinds. Compute ops carry MACs; the rest move data or run on a vector unit."""

    CONV = "conv"            # dense or grouped convolution (1-D convs use Q = S = 1)
    DEPTHWISE = "depthwise"  # grouped conv with one in-channel per group (C == G)
    LINEAR = "linear"        # activations x weights (fully connected; GEMM with a weight operand)
    MATMUL = "matmul"        # activations x activations (attention QK^T, AV, bmm); no weights
    POOL = "pool"            # max/avg pooling (R x S window), global pooling included
    ELTWISE = "eltwise"      # elementwise add/mul of equal-shape tensors
    CONCAT = "concat"        # no arithmetic; tensors and edges kept
    SPLIT = "split"
    SHUFFLE = "shuffle"
    RESHAPE = "reshape"
    SOFTMAX = "softmax"
    NORM = "norm"            # layer norm (batch norm is folded into the preceding conv)

    @property
    def has_macs(self) -> bool:
        return self in _MAC_OPS

    @property
    def is_gemm_like(self) -> bool:
        return self in _MAC_OPS


_MAC_OPS = frozenset({Op.CONV, Op.DEPTHWISE, Op.LINEAR, Op.MATMUL})
_DATA_MOVEMENT_OPS = frozenset({Op.CONCAT, Op.SPLIT, Op.SHUFFLE, Op.RESHAPE})


class SparsityKind(str, Enum):
    DENSE = "dense"
    UNSTRUCTURED = "unstructured"
    NM = "n:m"            # n nonzeros in every m consecutive weights along the reduction (C*R*S) axis
    BLOCK = "block"       # zero blocks of shape (bh, bw) in the (K, C*R*S) weight matrix
    CHANNEL = "channel"   # whole filters/channels zeroed but not removed


@dataclass(frozen=True)
class Sparsity:
    """The structure of a layer's weight zeros (the density itself is ``Layer.weight_density``)."""

    kind: SparsityKind = SparsityKind.DENSE
    n: int | None = None
    m: int | None = None
    block: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SparsityKind(self.kind))
        if self.block is not None:
            object.__setattr__(self, "block", tuple(int(b) for b in self.block))
        if self.kind is SparsityKind.NM:
            if self.n is None or self.m is None or not (0 <= self.n <= self.m) or self.m < 1:
                raise ValueError(f"N:M sparsity needs 0 <= n <= m and m >= 1, got n={self.n}, m={self.m}")
        if self.kind is SparsityKind.BLOCK and (self.block is None or min(self.block) < 1):
            raise ValueError(f"block sparsity needs a block shape of positive ints, got {self.block}")

    def describe(self) -> str:
        if self.kind is SparsityKind.NM:
            return f"{self.n}:{self.m}"
        if self.kind is SparsityKind.BLOCK:
            return f"block{self.block[0]}x{self.block[1]}"
        return self.kind.value


@dataclass(frozen=True)
class PackedMask:
    """A boolean weight mask stored bit-packed (``np.packbits``); ``shape`` is (K, C/G*R*S)."""

    shape: tuple[int, ...]
    bits: bytes

    @classmethod
    def from_array(cls, mask: np.ndarray) -> "PackedMask":
        mask = np.asarray(mask, dtype=bool)
        return cls(shape=tuple(int(s) for s in mask.shape), bits=np.packbits(mask.ravel()).tobytes())

    def to_array(self) -> np.ndarray:
        count = int(np.prod(self.shape)) if self.shape else 1
        flat = np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=count)
        return flat.astype(bool).reshape(self.shape)

    @property
    def density(self) -> float:
        return float(self.to_array().mean()) if self.shape else 1.0

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "bits_b64": base64.b64encode(self.bits).decode("ascii")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PackedMask":
        return cls(shape=tuple(data["shape"]), bits=base64.b64decode(data["bits_b64"]))


def _pair(value: int | Iterable[int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    items = tuple(int(v) for v in value)
    return items if len(items) == 2 else (items[0], items[0])


@dataclass(frozen=True)
class Layer:
    """One operator as a 7-D loop nest plus precision, sparsity and provenance.

    For convolutions ``C``/``K`` are total in/out channels and ``G`` the number of groups.
    GEMM-shaped ops (``linear``, ``matmul``) use ``P`` for the rows (tokens), ``C`` for the
    reduction and ``K`` for the output features, with ``Q = R = S = 1``; ``N`` counts
    independent repeats (batch x heads for attention matmuls).
    """

    name: str
    op: Op
    N: int = 1
    K: int = 1
    C: int = 1
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    G: int = 1
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    input_size: tuple[int, int] | None = None   # unpadded input (H, W) when known (strided convs may drop rows)
    weight_bits: int = 8
    act_bits: int = 8
    out_bits: int = 8
    acc_bits: int = 32
    number_format: str = "int"          # int | fp | flex | binary | ternary | pow2
    weight_density: float = 1.0
    act_density: float = 1.0
    sparsity: Sparsity = field(default_factory=Sparsity)
    weight_mask: PackedMask | None = None
    act_essential_bits: float | None = None  # mean non-zero bits per activation (Bit-Pragmatic)
    # essential-bit histograms measured at lowering on a calibration batch (hwsim.interop.torch_profile):
    # entry b-1 holds the fractions of values with 0..b non-zero bits at b-bit precision
    act_essential_hist: tuple[tuple[float, ...], ...] = ()
    weight_essential_hist: tuple[tuple[float, ...], ...] = ()
    # widths no recipe set ("weight_bits", "act_bits", "out_bits"): they run at the hardware's native
    # width (hwsim.models.datapath.resolve_layer); the fields above then hold placeholders
    native_bits: tuple[str, ...] = ()
    grad_density: float = 1.0            # fraction of output gradients kept in backward (meProp top-k)
    phase: str = "forward"               # forward | backward_data | backward_weight | update (hwsim.training)
    source: str = ""                     # module path in the original model
    compression: tuple[str, ...] = ()    # steps that produced this layer, e.g. ("nm_prune(2:4)",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", Op(self.op))
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "dilation", _pair(self.dilation))
        object.__setattr__(self, "padding", _pair(self.padding))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", _pair(self.input_size))
        object.__setattr__(self, "compression", tuple(self.compression))
        object.__setattr__(self, "native_bits", tuple(self.native_bits))
        for name in ("act_essential_hist", "weight_essential_hist"):
            object.__setattr__(self, name, tuple(tuple(float(v) for v in row) for row in getattr(self, name)))
        if isinstance(self.sparsity, dict):
            object.__setattr__(self, "sparsity", Sparsity(**self.sparsity))
        self._validate()

    def _validate(self) -> None:
        where = f"layer {self.name!r}"
        for dim in ("N", "K", "C", "P", "Q", "R", "S", "G"):
            value = getattr(self, dim)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{where}: {dim} must be a positive integer, got {value!r}")
        if self.op.has_macs or self.op is Op.POOL:
            if self.C % self.G:
                raise ValueError(f"{where}: C={self.C} is not divisible by groups G={self.G}")
            if self.K % self.G:
                raise ValueError(f"{where}: K={self.K} is not divisible by groups G={self.G}")
        for name in ("stride", "dilation"):
            if min(getattr(self, name)) < 1:
                raise ValueError(f"{where}: {name} must be >= 1, got {getattr(self, name)}")
        if min(self.padding) < 0:
            raise ValueError(f"{where}: padding must be >= 0, got {self.padding}")
        for name in ("weight_bits", "act_bits", "out_bits", "acc_bits"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 1 <= value <= 64:
                raise ValueError(f"{where}: {name} must be an integer in [1, 64], got {value!r}")
        if bad := sorted(set(self.native_bits) - {"weight_bits", "act_bits", "out_bits"}):
            raise ValueError(f"{where}: native_bits names unknown width(s) {bad}")
        if self.phase not in PHASES:
            raise ValueError(f"{where}: phase must be one of {list(PHASES)}, got {self.phase!r}")
        for name in ("weight_density", "act_density", "grad_density"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ValueError(f"{where}: {name} must be in [0, 1], got {value}")
        for name in ("act_essential_hist", "weight_essential_hist"):
            for bits, row in enumerate(getattr(self, name), start=1):
                if len(row) != bits + 1 or min(row) < 0 or abs(sum(row) - 1.0) > 1e-3:
                    raise ValueError(f"{where}: {name} at {bits} bits must be {bits + 1} fractions summing to 1, "
                                     f"got {list(row)}")

    def essential_bits_at(self, bits: int, *, group: int = 1, min_terms: int = 0) -> float | None:
        """Expected essential bits per input activation at ``bits`` bits, or None if not profiled.

        With ``group > 1``, the expected largest count among ``group`` activations (lanes that advance
        in lock-step wait for the slowest; values treated as independent draws from the histogram),
        at least ``min_terms``: E[max(min_terms, M)] = sum over k >= 1 of P(max >= k).
        """
        if not 1 <= bits <= len(self.act_essential_hist):
            return None
        cdf = np.cumsum(self.act_essential_hist[bits - 1])
        return float(sum(1.0 if k <= min_terms else 1.0 - min(1.0, cdf[k - 1]) ** group
                         for k in range(1, bits + 1)))

    # ----- derived sizes ---------------------------------------------------------------------
    @property
    def c_per_group(self) -> int:
        return self.C // self.G

    @property
    def k_per_group(self) -> int:
        return self.K // self.G

    @property
    def has_weights(self) -> bool:
        return self.op in (Op.CONV, Op.DEPTHWISE, Op.LINEAR)

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates (zeros included)."""
        if not self.op.has_macs:
            return 0
        return self.N * self.K * self.c_per_group * self.P * self.Q * self.R * self.S

    @property
    def effectual_macs(self) -> float:
        """MACs whose weight and activation are both non-zero (expected value from densities)."""
        return self.macs * self.weight_density * self.act_density

    @property
    def vector_ops(self) -> int:
        """Non-MAC arithmetic (pool compares/adds, eltwise ops), for the vector unit."""
        out = self.N * self.K * self.P * self.Q
        if self.op is Op.POOL:
            return out * self.R * self.S
        if self.op in (Op.ELTWISE, Op.SOFTMAX, Op.NORM):
            return out
        return 0

    @property
    def input_hw(self) -> tuple[int, int]:
        """Unpadded input height/width: ``input_size`` when known, else the smallest one the output implies."""
        if self.input_size is not None:
            return self.input_size
        h = (self.P - 1) * self.stride[0] + (self.R - 1) * self.dilation[0] + 1 - 2 * self.padding[0]
        w = (self.Q - 1) * self.stride[1] + (self.S - 1) * self.dilation[1] + 1 - 2 * self.padding[1]
        return max(h, 1), max(w, 1)

    @property
    def weight_elems(self) -> int:
        return self.K * self.c_per_group * self.R * self.S if self.has_weights else 0

    @property
    def second_operand_elems(self) -> int:
        """Elements of the 'weight-side' operand: weights, or the second activation of a matmul."""
        if self.op is Op.MATMUL:
            return self.N * self.K * self.C
        return self.weight_elems

    @property
    def input_elems(self) -> int:
        h, w = self.input_hw
        if self.op in (Op.LINEAR, Op.MATMUL):
            return self.N * self.P * self.C
        return self.N * self.C * h * w

    @property
    def output_elems(self) -> int:
        return self.N * self.K * self.P * self.Q

    @property
    def gemm_shape(self) -> tuple[int, int, int, int]:
        """``(groups, M, K_reduction, N_cols)`` of the per-group GEMM this layer lowers to."""
        if self.op is Op.MATMUL:
            return (self.N, self.P * self.Q, self.C * self.R * self.S, self.K)
        return (self.G, self.N * self.P * self.Q, self.c_per_group * self.R * self.S, self.k_per_group)

    def with_changes(self, **changes: Any) -> "Layer":
        """A copy with some fields replaced (unknown names are rejected)."""
        valid = {f.name for f in fields(self)}
        if unknown := sorted(changes.keys() - valid):
            raise ValueError(f"unknown Layer field(s) {unknown}; valid: {sorted(valid)}")
        return replace(self, **changes)

    # ----- JSON ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["op"] = self.op.value
        data["sparsity"] = {
            "kind": self.sparsity.kind.value, "n": self.sparsity.n, "m": self.sparsity.m,
            "block": list(self.sparsity.block) if self.sparsity.block else None,
        }
        data["weight_mask"] = self.weight_mask.to_json() if self.weight_mask else None
        for key in ("stride", "dilation", "padding", "compression", "native_bits"):
            data[key] = list(getattr(self, key))
        for key in ("act_essential_hist", "weight_essential_hist"):
            data[key] = [list(row) for row in getattr(self, key)]
        data["input_size"] = list(self.input_size) if self.input_size else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Layer":
        if not isinstance(data, dict):
            raise ValueError(f"a layer must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        valid = {f.name for f in fields(cls)}
        if unknown := sorted(data.keys() - valid):
            raise ValueError(f"layer {data.get('name')!r}: unknown field(s) {unknown}")
        if missing := [key for key in REQUIRED_LAYER_FIELDS if key not in data]:
            raise ValueError(f"layer {data.get('name', '<unnamed>')!r}: missing required field(s) {missing}")
        sparsity = data.pop("sparsity", None) or {}
        if sparsity.get("block") is not None:
            sparsity["block"] = tuple(sparsity["block"])
        mask = data.pop("weight_mask", None)
        return cls(
            **data,
            sparsity=Sparsity(**sparsity),
            weight_mask=PackedMask.from_json(mask) if mask else None,
        )


class LayerGraph:
    """A DAG of ``Layer`` records (node attribute ``layer``) with data-dependency edges.

    Until ``graph`` is first read the layers live in plain dicts (insertion-ordered nodes, each node's
    inputs in the order its edges were added, and every edge in order), which is all that building,
    loading, ordering and saving need. ``graph`` then builds the ``networkx.DiGraph`` with the same node
    and edge order and it becomes the only copy (callers may edit it in place).
    """

    def __init__(self, name: str = "model", *, input_shape: tuple[int, ...] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape else None
        self.meta: dict[str, Any] = dict(meta or {})
        self._nx: Any = None                           # the networkx.DiGraph, once ``graph`` was read
        self._layers: dict[str, Layer] = {}            # until then: name -> layer, in insertion order
        self._inputs: dict[str, dict[str, None]] = {}  # name -> its inputs (an ordered set)
        self._edges: list[tuple[str, str]] = []        # every edge in the order it was added

    @property
    def graph(self) -> Any:
        """The ``networkx.DiGraph`` (node attribute ``layer``), built on first use."""
        if self._nx is None:
            import networkx as nx

            digraph = nx.DiGraph()
            digraph.add_nodes_from((name, {"layer": layer}) for name, layer in self._layers.items())
            digraph.add_edges_from(self._edges)
            self.graph = digraph
        return self._nx

    @graph.setter
    def graph(self, digraph: Any) -> None:
        self._nx, self._layers, self._inputs, self._edges = digraph, {}, {}, []

    def _has(self, name: str) -> bool:
        return name in (self._nx if self._nx is not None else self._layers)

    def _add_edge(self, src: str, dst: str) -> None:
        if self._nx is not None:
            self._nx.add_edge(src, dst)
        elif src not in self._inputs[dst]:
            self._inputs[dst][src] = None
            self._edges.append((src, dst))

    # ----- building --------------------------------------------------------------------------
    def add_layer(self, layer: Layer, inputs: Iterable[str] = ()) -> Layer:
        if self._has(layer.name):
            raise ValueError(f"duplicate layer name {layer.name!r}")
        if self._nx is not None:
            self._nx.add_node(layer.name, layer=layer)
        else:
            self._layers[layer.name] = layer
            self._inputs[layer.name] = {}
        for src in inputs:
            if not self._has(src):
                raise ValueError(f"layer {layer.name!r}: input {src!r} is not in the graph")
            self._add_edge(src, layer.name)
        return layer

    def replace_layer(self, layer: Layer) -> None:
        if not self._has(layer.name):
            raise KeyError(layer.name)
        if self._nx is not None:
            self._nx.nodes[layer.name]["layer"] = layer
        else:
            self._layers[layer.name] = layer

    def map_layers(self, fn) -> "LayerGraph":
        """A new graph with ``fn(layer)`` applied to every layer (edges kept)."""
        out = LayerGraph(self.name, input_shape=self.input_shape, meta=self.meta)
        if self._nx is not None:
            out.graph = self._nx.copy()
            for node in out.graph.nodes:
                out.graph.nodes[node]["layer"] = fn(out.graph.nodes[node]["layer"])
        else:
            out._layers = {name: fn(layer) for name, layer in self._layers.items()}
            out._inputs = {name: dict(inputs) for name, inputs in self._inputs.items()}
            out._edges = list(self._edges)
        return out

    # ----- reading ---------------------------------------------------------------------------
    def _names(self) -> list[str]:
        return list(self._nx.nodes if self._nx is not None else self._layers)

    def _layer(self, name: str) -> Layer:
        return self._nx.nodes[name]["layer"] if self._nx is not None else self._layers[name]

    def __len__(self) -> int:
        return self._nx.number_of_nodes() if self._nx is not None else len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers())

    def __getitem__(self, name: str) -> Layer:
        return self._layer(name)

    def layers(self) -> list[Layer]:
        """Layers in a deterministic topological order (ties broken by insertion order)."""
        if self._nx is not None:
            import networkx as nx

            order = {name: i for i, name in enumerate(self._nx.nodes)}
            names = nx.lexicographical_topological_sort(self._nx, key=lambda n: order[n])
            return [self._nx.nodes[n]["layer"] for n in names]
        return [self._layers[n] for n in _insertion_topological_order(self._layers, self._edges)]

    topological_layers = layers

    def compute_layers(self) -> list[Layer]:
        return [layer for layer in self.layers() if layer.op.has_macs]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers())

    @property
    def weight_elems(self) -> int:
        return sum(layer.weight_elems for layer in self.layers())

    def predecessors(self, name: str) -> list[str]:
        if self._nx is not None:
            return list(self._nx.predecessors(name))
        return list(self._inputs[name])

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "layers": len(self), "compute_layers": len(self.compute_layers()),
                "macs": self.macs, "weights": self.weight_elems}

    # ----- JSON ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "hwsim_ir_version": IR_VERSION,
            "name": self.name,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "meta": self.meta,
            "layers": [{**self._layer(n).to_json(), "inputs": self.predecessors(n)} for n in self._names()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LayerGraph":
        if data.get("hwsim_ir_version") != IR_VERSION:
            raise ValueError(f"not an hwsim layer graph (hwsim_ir_version={data.get('hwsim_ir_version')!r}, "
                             f"expected {IR_VERSION})")
        if not isinstance(data.get("layers"), list) or not data["layers"]:
            raise ValueError("the graph has no layers (a layer graph needs at least one layer)")
        graph = cls(data.get("name", "model"), input_shape=data.get("input_shape"), meta=data.get("meta"))
        pending = [dict(entry) if isinstance(entry, dict) else entry for entry in data["layers"]]
        edges = []
        for entry in pending:
            if not isinstance(entry, dict):
                raise ValueError(f"a layer must be a JSON object, got {type(entry).__name__}")
            inputs = entry.pop("inputs", [])
            graph.add_layer(Layer.from_json(entry))
            edges.extend((src, entry["name"]) for src in inputs)
        for src, dst in edges:
            if not graph._has(src):
                raise ValueError(f"layer {dst!r}: input {src!r} is not in the graph")
            graph._add_edge(src, dst)
        return graph

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LayerGraph":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path.name}: not valid JSON ({err.msg} at line {err.lineno})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path.name}: not a text (UTF-8 JSON) file") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path.name}: a layer graph is a JSON object, got {type(data).__name__}")
        return cls.from_json(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LayerGraph) and self.to_json() == other.to_json()


def _insertion_topological_order(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's algorithm taking the earliest-added ready node first: the order networkx's
    ``lexicographical_topological_sort`` gives with insertion order as the key (``LayerGraph.layers``)."""
    index = {name: i for i, name in enumerate(nodes)}
    children: dict[str, list[str]] = {name: [] for name in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for src, dst in edges:
        children[src].append(dst)
        indegree[dst] += 1
    ready = [(index[n], n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (index[child], child))
    if len(order) < len(nodes):
        stuck = sorted((n for n, d in indegree.items() if d > 0), key=index.__getitem__)
        raise ValueError(f"the layer graph has a cycle (through {', '.join(map(repr, stuck[:3]))})")
    return order
