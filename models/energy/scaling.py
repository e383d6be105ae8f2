"""Technology-node and supply-voltage scaling of energy and area.

Node factors come from A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of
CMOS device performance from 180 nm to 7 nm", Integration 58 (2017) 74-81, DOI
10.1016/j.vlsi.2017.02.002: per node, energy as a quadratic polynomial in VDD (a*V^2 + b*V + c) and a
node-to-node area factor. Coefficients as transcribed in the Accelergy library plug-in /
hwcomponents-library (Accelergy-Project), which evaluates every node at one reference voltage
(0.8 V) so that the node factor and the voltage knob stay separate; we follow that convention.
Between tabulated nodes (e.g. 40, 28, 22 nm) factors are interpolated linearly in nm.

Voltage knob: dynamic energy ~ C V^2, so ``voltage_factor = (V / V_table)^2``.
"""

from __future__ import annotations

from functools import lru_cache

from hwsim.errors import ConfigError

REFERENCE_VDD_V = 0.8

# node nm: (a, b, c) of energy(V) = a V^2 + b V + c, Stillmaker & Baas 2017 energy fits.
_ENERGY_POLY: dict[float, tuple[float, float, float]] = {
    130: (7.171, -6.709, 2.904),
    90: (4.762, -4.781, 2.092),
    65: (3.755, -4.398, 1.975),
    45: (1.103, -0.362, 0.2767),
    32: (0.9559, -0.7823, 0.471),
    20: (0.373, -0.1582, 0.04104),
    16: (0.2958, -0.1241, 0.03024),
    14: (0.2363, -0.09675, 0.02239),
    10: (0.2068, -0.09311, 0.02375),
    7: (0.1776, -0.09097, 0.02447),
}

# node nm: area relative to 45 nm, Stillmaker & Baas 2017 area scaling (45 nm row).
_AREA_VS_45NM: dict[float, float] = {
    130: 6.4, 90: 2.8, 65: 1.5, 45: 1.0, 32: 0.46, 20: 0.21, 16: 0.19, 14: 0.17, 10: 0.1, 7: 0.059,
}

SCALING_SOURCE = ("Stillmaker & Baas, Integration 58 (2017) 74-81, energy polynomial in VDD (evaluated at "
                  "0.8 V) and area factors per node; linear interpolation in nm between tabulated nodes")


def _energy_at_reference(node_nm: float) -> float:
    a, b, c = _ENERGY_POLY[node_nm]
    return a * REFERENCE_VDD_V ** 2 + b * REFERENCE_VDD_V + c


def _interpolate(table: dict[float, float], node_nm: float, *, what: str) -> float:
    nodes = sorted(table)
    if not nodes[0] <= node_nm <= nodes[-1]:
        raise ConfigError(f"technology_nm={node_nm:g} is outside the {what} scaling range "
                          f"{nodes[0]:g}-{nodes[-1]:g} nm (Stillmaker & Baas 2017)")
    for low, high in zip(nodes, nodes[1:]):
        if low <= node_nm <= high:
            weight = (node_nm - low) / (high - low)
            return table[low] * (1 - weight) + table[high] * weight
    return table[nodes[-1]]


_ENERGY_AT_REF = {node: _energy_at_reference(node) for node in _ENERGY_POLY}


@lru_cache(maxsize=1024)
def energy_factor(from_nm: float, to_nm: float) -> float:
    """Multiply an energy measured at ``from_nm`` by this to get it at ``to_nm`` (same voltage)."""
    if from_nm == to_nm:
        return 1.0
    return (_interpolate(_ENERGY_AT_REF, to_nm, what="energy")
            / _interpolate(_ENERGY_AT_REF, from_nm, what="energy"))


@lru_cache(maxsize=1024)
def area_factor(from_nm: float, to_nm: float) -> float:
    """Multiply an area measured at ``from_nm`` by this to get it at ``to_nm``."""
    if from_nm == to_nm:
        return 1.0
    return _interpolate(_AREA_VS_45NM, to_nm, what="area") / _interpolate(_AREA_VS_45NM, from_nm, what="area")


def voltage_factor(voltage_v: float | None, reference_v: float) -> float:
    """Dynamic-energy factor of running at ``voltage_v`` instead of ``reference_v`` (E ~ V^2)."""
    if voltage_v is None:
        return 1.0
    if voltage_v <= 0:
        raise ConfigError(f"voltage_v must be > 0, got {voltage_v}")
    return (voltage_v / reference_v) ** 2
