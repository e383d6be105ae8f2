"""Network-level helpers: power, TOPS/W, EDP, re-targeting an arch, and the preset catalogue."""

from __future__ import annotations

from typing import Any

from hwsim.errors import ConfigError
from hwsim.models.arch import ArchSpec, load_arch, preset_names

PJ_PER_J = 1e12


def power_mw(energy_pj: float, latency_s: float) -> float:
    """Average power (mW) of spending ``energy_pj`` over ``latency_s`` (0 for zero latency)."""
    return energy_pj / PJ_PER_J / latency_s * 1e3 if latency_s > 0 else 0.0


def tops_per_w(ops: float, energy_pj: float) -> float:
    """Efficiency in TOPS/W of ``ops`` operations (2 per MAC) costing ``energy_pj`` (= ops per pJ)."""
    return ops / energy_pj if energy_pj > 0 else 0.0


def edp_j_s(energy_pj: float, latency_s: float) -> float:
    """Energy-delay product in J*s."""
    return energy_pj / PJ_PER_J * latency_s


def parse_technology_nm(value: str | float | int) -> float:
    """``"28nm"``, ``"28 nm"``, ``"28"`` or ``28`` -> 28.0 (for ``--tech``)."""
    text = str(value).strip().lower().removesuffix("nm").strip()
    try:
        node = float(text)
    except ValueError:
        raise ConfigError(f"technology node {value!r} is not a number of nm (e.g. 28nm)") from None
    if node <= 0:
        raise ConfigError(f"technology node must be > 0 nm, got {value!r}")
    return node


def retarget(arch: ArchSpec, *, technology_nm: float | None = None, clock_hz: float | None = None,
             voltage_v: float | None = None) -> ArchSpec:
    """The same arch at another node / clock / supply voltage; ``price`` then scales every table row.

    Pinned per-level energies (``energy.levels``, ``energy.mac_pj``) keep the node they were given at
    (``energy.reference_nm``), so they scale too.
    """
    overrides: dict[str, Any] = {}
    if technology_nm is not None:
        if technology_nm <= 0:
            raise ConfigError(f"{arch.name}: technology_nm must be > 0 (got {technology_nm})")
        overrides["technology_nm"] = technology_nm
        if arch.energy.reference_nm is None and (arch.energy.levels or arch.energy.mac_pj is not None):
            overrides["energy.reference_nm"] = arch.technology_nm
    if clock_hz is not None:
        overrides["clock_hz"] = clock_hz
    if voltage_v is not None:
        overrides["energy.voltage_v"] = voltage_v
    return arch.with_overrides(overrides, origin=arch.name) if overrides else arch


def describe_arch(arch: ArchSpec) -> dict[str, Any]:
    """One catalogue row: name, engine, MACs, clock, peak TOPS, on-chip bytes, node, sources."""
    return {
        "name": arch.name, "engine": arch.engine, "macs": arch.peak_macs_per_cycle, "clock_hz": arch.clock_hz,
        "peak_tops": arch.peak_ops_per_s / 1e12, "on_chip_bytes": arch.on_chip_bytes,
        "technology_nm": arch.technology_nm, "energy_table": arch.energy.table,
        "description": arch.description,
        "source": arch.sources.get("clock_hz") or next(iter(arch.sources.values()), ""),
    }


def describe_presets() -> list[dict[str, Any]]:
    """Catalogue rows of every shipped preset (for ``hwsim list archs``)."""
    return [describe_arch(load_arch(name)) for name in preset_names()]
