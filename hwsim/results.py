"""Simulation results: ``LayerResult`` per layer and ``NetworkResult`` per network.

Results are frozen; every total is a property derived from the layers, never a stored copy.
``NetworkResult.to_json()`` has stable keys (``model``, ``arch``, ``total``, ``layers``): later
features add keys, never rename them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.models.counts import LayerCounts

PJ_PER_J = 1e12


@dataclass(frozen=True)
class LayerResult:
    """One layer's cycles, energy and power on one architecture."""

    name: str
    op: str
    macs: int
    compute_cycles: int
    stall_cycles: int
    energy_pj: float
    utilization: float
    clock_hz: float
    engine: str
    active_pes: int = 0               # PE / multiplier instances the mapping puts to work (LayerCounts.active_pes)
    energy_by_level_pj: dict[str, float] = field(default_factory=dict)
    energy_by_tensor_pj: dict[str, float] = field(default_factory=dict)
    compute_energy_pj: float = 0.0
    leakage_energy_pj: float = 0.0
    weight_bits: int = 8
    act_bits: int = 8
    weight_density: float = 1.0
    sparsity: str = "dense"
    source: str = ""
    note: str = ""
    phase: str = "forward"
    counts: LayerCounts | None = field(default=None, compare=False, repr=False)
    energy_items: tuple = field(default=(), compare=False, repr=False)

    @property
    def cycles(self) -> int:
        return self.compute_cycles + self.stall_cycles

    @property
    def latency_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def power_mw(self) -> float:
        return power_mw(self.energy_pj, self.latency_s)

    def bytes_at(self, level: str) -> float:
        """Bytes moved at memory ``level`` (every tensor and action), from the layer's access counts."""
        if self.counts is None:
            return 0.0
        return float(sum(a.total * a.word_bits / 8 for a in self.counts.accesses if a.level == level))

    def to_row(self) -> dict[str, Any]:
        return {
            "name": self.name, "op": self.op, "engine": self.engine, "macs": self.macs,
            "cycles": self.cycles, "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
            "latency_s": self.latency_s, "energy_pj": self.energy_pj, "power_mw": self.power_mw,
            "utilization": self.utilization, "active_pes": self.active_pes, "compute_energy_pj": self.compute_energy_pj,
            "leakage_energy_pj": self.leakage_energy_pj, "weight_bits": self.weight_bits,
            "act_bits": self.act_bits, "weight_density": self.weight_density, "sparsity": self.sparsity,
            "source": self.source, "note": self.note, "phase": self.phase,
        }


def power_mw(energy_pj: float, latency_s: float) -> float:
    """Average power in mW of ``energy_pj`` spent over ``latency_s``."""
    return (energy_pj / PJ_PER_J) / latency_s * 1e3 if latency_s > 0 else 0.0


def _sum_dicts(dicts) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in dicts:
        for key, value in d.items():
            out[key] = out.get(key, 0.0) + value
    return out


@dataclass(frozen=True)
class NetworkResult:
    """A whole network on one architecture: per-layer results plus derived totals."""

    model: str
    arch: str
    layers: tuple[LayerResult, ...]
    clock_hz: float
    peak_macs_per_cycle: int
    technology_nm: float
    area_by_component_mm2: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # ----- totals ------------------------------------------------------------------------
    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def latency_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def energy_pj(self) -> float:
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def power_mw(self) -> float:
        return power_mw(self.energy_pj, self.latency_s)

    @property
    def peak_power_mw(self) -> float:
        return max((layer.power_mw for layer in self.layers if layer.cycles), default=0.0)

    @property
    def utilization(self) -> float:
        """MACs done / MAC slots available over the whole run."""
        return self.macs / (self.cycles * self.peak_macs_per_cycle) if self.cycles else 0.0

    @property
    def area_mm2(self) -> float:
        return sum(self.area_by_component_mm2.values())

    @property
    def edp_pj_s(self) -> float:
        return self.energy_pj * self.latency_s

    @property
    def tops_per_w(self) -> float:
        """Achieved tera-operations (2 per MAC) per joule-second, i.e. TOPS/W."""
        joules = self.energy_pj / PJ_PER_J
        return (2 * self.macs / joules) / 1e12 if joules else 0.0

    @property
    def inferences_per_s_per_w(self) -> float:
        joules = self.energy_pj / PJ_PER_J
        return 1.0 / joules if joules else 0.0

    @property
    def energy_breakdown_pj(self) -> dict[str, Any]:
        return {
            "compute": sum(layer.compute_energy_pj for layer in self.layers),
            "leakage": sum(layer.leakage_energy_pj for layer in self.layers),
            "by_level": _sum_dicts(layer.energy_by_level_pj for layer in self.layers),
            "by_tensor": _sum_dicts(layer.energy_by_tensor_pj for layer in self.layers),
            "by_op": _sum_dicts({layer.op: layer.energy_pj} for layer in self.layers),
        }

    @property
    def total(self) -> dict[str, Any]:
        return {
            "macs": self.macs, "cycles": self.cycles, "latency_s": self.latency_s,
            "energy_pj": self.energy_pj, "power_mw": self.power_mw, "utilization": self.utilization,
            "peak_power_mw": self.peak_power_mw, "area_mm2": self.area_mm2, "edp_pj_s": self.edp_pj_s,
            "tops_per_w": self.tops_per_w, "inferences_per_s": 1.0 / self.latency_s if self.cycles else 0.0,
            "energy_breakdown_pj": self.energy_breakdown_pj,
            **({"phases": self.phases} if any(layer.phase != "forward" for layer in self.layers) else {}),
            **({key: self.meta["data_parallel"][key] for key in ("communication_s", "step_s", "speedup_vs_one_device")}
               if "data_parallel" in self.meta else {}),
        }

    @property
    def phases(self) -> dict[str, dict[str, float]]:
        """Per training phase (forward, backward_data, backward_weight, update): cycles, time, energy, MACs."""
        from hwsim.training import phase_totals

        return phase_totals(self)

    # ----- export ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "arch": self.arch, "clock_hz": self.clock_hz,
            "technology_nm": self.technology_nm, "total": self.total,
            "area_by_component_mm2": self.area_by_component_mm2,
            "layers": [layer.to_row() for layer in self.layers], "meta": self.meta,
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1, default=str))
        return path

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        rows = [layer.to_row() for layer in self.layers]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["name"])
            writer.writeheader()
            writer.writerows(rows)
        return path

    def to_dataframe(self):
        """Per-layer results as a pandas DataFrame (one row per layer)."""
        import pandas as pd

        return pd.DataFrame([layer.to_row() for layer in self.layers])
