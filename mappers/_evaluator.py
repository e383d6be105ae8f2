"""Fast mapping evaluation for the search: kernel arrays built straight from a ``Plan``, energy from unit costs.

Unit costs come from one ``price()`` call on a synthetic ``LayerCounts`` (one word of every level x tensor x
action, one MAC, one cycle), so the search ranks mappings with exactly the figures ``price()`` would give.
"""

from __future__ import annotations

import numpy as np

from hwsim.mappers.mapping import DIMS, TENSORS
from hwsim.models.arch import ArchSpec
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.energy import price
from hwsim.models.spatial._kernels import _loops_kernel, _plan_cost_kernel
from hwsim.models.spatial.default import Plan
from hwsim.models.spatial.nest import Problem
from hwsim.models.spatial.zeros import dram_input_scale, zero_handling

_ACTIONS = ("read", "write", "update")
_DIM_INDEX = {d: i for i, d in enumerate(DIMS)}


class Evaluator:
    """Scores plans of one problem on one architecture (energy in pJ, cycles)."""

    ignores_keep = False         # the engine prices bypass: plans differing only in keep sets differ

    def __init__(self, problem: Problem, arch: ArchSpec, *, mac_kind: str = "int") -> None:
        self.problem, self.arch = problem, arch
        self.proj, self.nranks = problem.proj_array()
        n = len(arch.memory)
        self.bits = np.array([[problem.out_bits if (i == 0 and t == 2) else problem.bits[t] for t in range(3)]
                              for i in range(n)], dtype=np.float64)
        self._unit_costs(mac_kind)
        self._capacities()
        self.read_bw = np.array([lvl.read_bw_bytes_per_cycle or 0.0 for lvl in arch.memory])
        self.write_bw = np.array([lvl.write_bw_bytes_per_cycle or 0.0 for lvl in arch.memory])
        self.evaluated = 0
        self.mac_reuse = bool(arch.spatial and arch.spatial.mac_operand_reuse)
        self.identical_multicast = bool(arch.spatial and arch.spatial.multicast == "identical")
        self._keep_cache: dict = {}
        self._orders_cache: dict = {}
        self._spatial_cache: dict = {}

    def _unit_costs(self, mac_kind: str) -> None:
        arch, n = self.arch, len(self.arch.memory)
        accesses = [Access(level=lvl.name, tensor=t, action=a, count=1.0, instances=1,
                           word_bits=int(self.bits[i, k]))
                    for i, lvl in enumerate(arch.memory) for k, t in enumerate(TENSORS) for a in _ACTIONS]
        unit = LayerCounts(compute_cycles=1, mac_ops=1.0, gated_mac_ops=1.0, weight_bits=self.problem.bits[0],
                           act_bits=self.problem.bits[1], mac_kind=mac_kind, accesses=tuple(accesses))
        items = price(unit, arch, cycles=1).items
        names = [lvl.name for lvl in arch.memory]
        self.pj = np.zeros((n, 3, 3))
        self.leak_pj, self.mac_pj, gated_pj = 0.0, 0.0, 0.0
        for item in items:
            if item.component == "mac":
                self.mac_pj += item.pj_each if item.action == "compute" else 0.0
                gated_pj += item.pj_each if item.action == "gated" else 0.0
            elif item.action == "leak":
                self.leak_pj += item.total_pj
            elif item.component in names:
                self.pj[names.index(item.component), TENSORS.index(item.tensor), _ACTIONS.index(item.action)] = \
                    item.pj_each
        self._zero_scales(gated_pj)
        width = np.array([lvl.width_bits or lvl.word_bits for lvl in arch.memory], dtype=np.float64)[:, None]
        self.words_per_vector = np.where(self.bits <= width, np.floor(width / self.bits), 1.0)
        self.vectors_per_word = np.where(self.bits <= width, 1.0, np.ceil(self.bits / width))

    def _zero_scales(self, gated_pj: float) -> None:
        """What the engine does with zero activations (``models/spatial/zeros.py``), as kernel scales."""
        arch, problem, n = self.arch, self.problem, len(self.arch.memory)
        density, zeros = problem.act_density, zero_handling(arch)
        self.count_scale = np.ones((n, 3, 3))
        self.count_scale[0, 1, 0] = dram_input_scale(arch, density=density, act_bits=problem.bits[1])
        self.compute_scale = density if zeros == "skip" else 1.0
        if zeros != "none":
            self.count_scale[n - 1, 0, 0] = density
            self.mac_pj = density * self.mac_pj + ((1.0 - density) * gated_pj if zeros == "gate" else 0.0)

    def _capacities(self) -> None:
        n = len(self.arch.memory)
        self.part_cap = np.full((n, 3), np.inf)
        self.total_cap = np.full(n, np.inf)
        for i, lvl in enumerate(self.arch.memory):
            if lvl.partition_bytes:
                self.part_cap[i] = [lvl.partition_bytes.get(t, 0) for t in TENSORS]
            elif lvl.size_bytes is not None:
                self.total_cap[i] = lvl.size_bytes

    def arrays(self, plan: Plan) -> tuple[np.ndarray, ...]:
        """Kernel loop arrays (dim, bound, level, spatial) and the keep matrix of a plan."""
        orders = self._orders_cache.get(plan.orders)
        if orders is None:
            orders = np.array([[_DIM_INDEX[d] for d in order] for order in plan.orders], dtype=np.int64)
            self._orders_cache[plan.orders] = orders
        spatial = self._spatial_cache.get(plan.spatial)
        if spatial is None:
            loops = [(_DIM_INDEX[d], f, i) for i, (x, y) in enumerate(plan.spatial) for d, f in x + y if f > 1]
            spatial = tuple(np.array([lp[k] for lp in loops], dtype=np.int64) for k in range(3))
            self._spatial_cache[plan.spatial] = spatial
        keep = self._keep_cache.get(plan.keep)
        if keep is None:
            keep = np.array([[t in k for t in TENSORS] for k in plan.keep], dtype=np.bool_)
            self._keep_cache[plan.keep] = keep
        dims, bounds, levels, is_spatial = _loops_kernel(
            factors=np.array(plan.factors, dtype=np.int64), order_idx=orders, sp_dim=spatial[0],
            sp_bound=spatial[1], sp_level=spatial[2])
        return dims, bounds, levels, is_spatial, keep

    def score(self, plan: Plan, arrays: tuple[np.ndarray, ...] | None = None) -> tuple[float, int] | None:
        """``(energy_pj, cycles)`` of a plan, or ``None`` when a tile does not fit."""
        self.evaluated += 1
        dims, bounds, levels, spatial, keep = arrays or self.arrays(plan)
        valid, energy, cycles = _plan_cost_kernel(
            loop_dim=dims, loop_bound=bounds, loop_level=levels, loop_spatial=spatial, proj=self.proj,
            nranks=self.nranks, keep=keep, n_levels=keep.shape[0], bits=self.bits,
            words_per_vector=self.words_per_vector, vectors_per_word=self.vectors_per_word, pj=self.pj,
            part_cap=self.part_cap, total_cap=self.total_cap, read_bw=self.read_bw, write_bw=self.write_bw,
            mac_pj=self.mac_pj, leak_pj=self.leak_pj, mac_reuse=self.mac_reuse, count_scale=self.count_scale,
            compute_scale=self.compute_scale, identical_multicast=self.identical_multicast)
        return (float(energy), int(cycles)) if valid else None
