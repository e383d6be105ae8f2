"""Problem description, fan-out geometry and mapping checks for the spatial loop-nest engine.

A ``Problem`` is the Einsum view of a MAC layer: loop bounds over ``N G K C P Q R S`` (K and C per
group), the projection of each tensor (W, I, O) onto its data ranks, and the bits of each tensor.
Fan-out follows Timeloop's convention: a level's ``mesh_x x mesh_y`` is the arrangement of its own
``instances``; the fan-out from level L to L+1 is the ratio of their instances (X split by the ratio of
their ``mesh_x``), and the last level fans out to ``compute.units`` MACs (X size from
``spatial.mac_mesh_x``, default all on X).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.errors import UnsupportedOpError
from hwsim.ir import Layer, Op
from hwsim.mappers.mapping import DIMS, TENSORS, Mapping
from hwsim.models.arch import ArchSpec
from hwsim.models.spatial._kernels import MAX_RANKS

DIM_INDEX = {dim: i for i, dim in enumerate(DIMS)}


@dataclass(frozen=True)
class Problem:
    """Loop bounds, tensor projections ``proj[t][r] = ((dim, coef), ...)`` and bits of W, I, O."""

    name: str
    bounds: tuple[tuple[str, int], ...]
    proj: tuple[tuple[tuple[tuple[str, int], ...], ...], ...]
    bits: tuple[int, int, int]            # W, I, O (partial sums on chip)
    out_bits: int = 8                     # O as written to the outermost level
    macs: int = 0                         # algorithmic MACs (unpadded)
    act_density: float = 1.0              # non-zero fraction of the input activations (layer.act_density)

    @property
    def bound(self) -> dict[str, int]:
        return dict(self.bounds)

    def proj_array(self) -> tuple[np.ndarray, np.ndarray]:
        """``proj[t, r, d]`` coefficients and ``nranks[t]`` as int64 arrays for the kernels."""
        arr = np.zeros((3, MAX_RANKS, len(DIMS)), dtype=np.int64)
        nranks = np.zeros(3, dtype=np.int64)
        for t, ranks in enumerate(self.proj):
            nranks[t] = len(ranks)
            for r, terms in enumerate(ranks):
                for dim, coef in terms:
                    arr[t, r, DIM_INDEX[dim]] += coef
        return arr, nranks


def problem_from_layer(layer: Layer, arch: ArchSpec | None = None) -> Problem:
    """The Einsum of a conv / depthwise / linear / matmul layer (Timeloop's 7-D CNN problem plus G)."""
    if not layer.op.has_macs:
        raise UnsupportedOpError(f"layer {layer.name!r}: the spatial engine models MAC layers; "
                                 f"{layer.op.value} runs on the vector unit (hwsim.models.vector)")
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    weight = [(("G", 1),), (("K", 1),), (("C", 1),), (("R", 1),), (("S", 1),)]
    if layer.op is Op.MATMUL:                       # second operand is an activation per batch entry
        weight = [(("N", 1),)] + weight
    inputs = [(("N", 1),), (("G", 1),), (("C", 1),), (("P", sh), ("R", dh)), (("Q", sw), ("S", dw))]
    outputs = [(("N", 1),), (("G", 1),), (("K", 1),), (("P", 1),), (("Q", 1),)]
    bounds = {"N": layer.N, "G": layer.G, "K": layer.k_per_group, "C": layer.c_per_group,
              "P": layer.P, "Q": layer.Q, "R": layer.R, "S": layer.S}
    acc = layer.acc_bits if arch is None else arch.compute.acc_bits   # partial sums at the datapath width
    return Problem(name=layer.name, bounds=tuple((d, bounds[d]) for d in DIMS),
                   proj=(tuple(weight), tuple(inputs), tuple(outputs)),
                   bits=(layer.weight_bits, layer.act_bits, acc), out_bits=layer.out_bits, macs=layer.macs,
                   act_density=layer.act_density)


def fanouts(arch: ArchSpec) -> list[tuple[int, int]]:
    """``(x, y)`` fan-out below each memory level (the last one feeds the MAC units)."""
    out = []
    levels = arch.memory
    for i, level in enumerate(levels):
        if i + 1 < len(levels):
            nxt = levels[i + 1]
            ratio = max(1, nxt.instances // level.instances)
            x = nxt.mesh_x // level.mesh_x if nxt.mesh_x % level.mesh_x == 0 else ratio
            x = x if x >= 1 and ratio % x == 0 else ratio
        else:
            ratio = max(1, arch.compute.units // level.instances)
            mac_x = arch.spatial.mac_mesh_x if arch.spatial and arch.spatial.mac_mesh_x else None
            x = mac_x if mac_x and ratio % mac_x == 0 else ratio
        out.append((x, ratio // x))
    return out


@dataclass(frozen=True)
class Nest:
    """The flattened loop nest (outer to inner) as kernel arrays."""

    loop_dim: np.ndarray
    loop_bound: np.ndarray
    loop_level: np.ndarray
    loop_spatial: np.ndarray
    keep: np.ndarray


def flatten(mapping: Mapping) -> Nest:
    """Kernel arrays of a mapping: per level its temporal loops, then its spatial X and Y loops."""
    dims, bounds, levels, spatial = [], [], [], []
    for lvl_index, lvl in enumerate(mapping.levels):
        for loops, is_spatial in ((lvl.temporal, 0), (lvl.spatial_x, 1), (lvl.spatial_y, 1)):
            for dim, bound in loops:
                if bound > 1:
                    dims.append(DIM_INDEX[dim])
                    bounds.append(bound)
                    levels.append(lvl_index)
                    spatial.append(is_spatial)
    keep = np.array([[t in lvl.keep for t in TENSORS] for lvl in mapping.levels], dtype=np.bool_)
    as_int = lambda xs: np.array(xs, dtype=np.int64)  # noqa: E731
    return Nest(as_int(dims), as_int(bounds), as_int(levels), as_int(spatial), keep)


def check_mapping(problem: Problem, arch: ArchSpec, mapping: Mapping) -> list[str]:
    """Every reason the mapping is invalid for this problem and architecture (empty when valid)."""
    names = [lvl.name for lvl in arch.memory]
    got = [lvl.level for lvl in mapping.levels]
    if got != names:
        return [f"mapping levels {got} do not match the architecture's memory levels {names}"]
    problems = []
    bound = problem.bound
    for dim in DIMS:
        product = mapping.dim_product(dim)
        if product < bound[dim]:
            problems.append(f"dim {dim}: loop bounds multiply to {product}, less than the layer's {bound[dim]}")
    if set(mapping.levels[0].keep) != set(TENSORS):
        problems.append(f"level {names[0]} (outermost) must keep W, I and O (keeps {list(mapping.levels[0].keep)})")
    for level, lvl_map, (fx, fy) in zip(arch.memory, mapping.levels, fanouts(arch)):
        if bad := sorted(set(lvl_map.keep) - set(level.tensors)):
            problems.append(f"level {level.name} cannot keep {bad} (allowed: {list(level.tensors)})")
        sx = math.prod(b for _, b in lvl_map.spatial_x)
        sy = math.prod(b for _, b in lvl_map.spatial_y)
        if sx > fx or sy > fy:
            problems.append(f"level {level.name}: spatial unrolling {sx}x{sy} exceeds its fan-out {fx}x{fy}")
    return problems


def capacity_problems(arch: ArchSpec, mapping: Mapping, tiles: np.ndarray, bits: tuple[int, ...]) -> list[str]:
    """Capacity violations given tile sizes ``tiles[level, tensor]`` (elements)."""
    problems = []
    for i, (level, lvl_map) in enumerate(zip(arch.memory, mapping.levels)):
        need = {t: tiles[i, k] * bits[k] / 8 for k, t in enumerate(TENSORS) if t in lvl_map.keep}
        if level.partition_bytes:
            for t, size in need.items():
                cap = level.partition_bytes.get(t)
                if cap is None:
                    problems.append(f"level {level.name} keeps {t} but has no {t} partition")
                elif size > cap:
                    problems.append(f"level {level.name}: {t} tile needs {size:g} B, partition holds {cap} B")
        elif level.size_bytes is not None and sum(need.values()) > level.size_bytes:
            detail = ", ".join(f"{t} {s:g} B" for t, s in need.items())
            problems.append(f"level {level.name}: tiles need {sum(need.values()):g} B ({detail}), "
                            f"capacity {level.size_bytes} B")
    return problems


def active_instances(problem: Problem, mapping: Mapping) -> int:
    """MAC units the mapping puts to work at once: spatial positions that hold real (unpadded) work.

    A dim split over spatial loops whose product exceeds its bound (a 27-row output over 2 x 14 PEs)
    leaves some positions idle; with every temporal loop at its first iteration (the fullest one) a
    position works when its index along each dim is inside the bound.
    """
    bound = problem.bound
    nest = flatten(mapping)
    active = 1
    for d, dim in enumerate(DIMS):
        rows = np.flatnonzero(nest.loop_dim == d)
        if not rows.size:
            continue
        bounds = nest.loop_bound[rows]
        strides = np.concatenate([np.cumprod(bounds[::-1])[::-1][1:], [1]])   # inner loops of this dim
        spatial = nest.loop_spatial[rows] == 1
        index = np.zeros(1, dtype=np.int64)
        for b, stride in zip(bounds[spatial], strides[spatial]):
            index = (index[:, None] + np.arange(b, dtype=np.int64)[None, :] * stride).ravel()
        active *= int(np.count_nonzero(index < bound[dim]))
    return active
