"""Energy, power and area (installed as ``hwsim.models.energy``; never imports torch).

* ``price(counts, arch, ...)`` -> ``EnergyBreakdown``: a pure pass over an engine's counts.
* ``load_table(name)`` / ``table_names()``: cited per-action tables in ``configs/energy/*.yaml``.
* ``mac_energy``, ``storage_energy``, ``dram_energy_per_bit``: component models fitted to a table.
* ``energy_factor``/``area_factor``/``voltage_factor``: Stillmaker & Baas 2017 node scaling, E ~ V^2.
* ``area_mm2(arch)``; ``power_mw``, ``tops_per_w``, ``edp_j_s``, ``retarget``, ``describe_presets``.
"""

from hwsim.models.energy.area import area_mm2, mac_area_um2, op_area_um2
from hwsim.models.energy.components import (Quote, binary_mac_energy, bitserial_step_energy, dram_energy_per_bit,
                                            mac_energy, op_energy, storage_energy)
from hwsim.models.energy.network import (describe_arch, describe_presets, edp_j_s, parse_technology_nm, power_mw,
                                         retarget, tops_per_w)
from hwsim.models.energy.price import EnergyBreakdown, EnergyItem, price, sum_breakdowns, vector_actions
from hwsim.models.energy.scaling import area_factor, energy_factor, voltage_factor
from hwsim.models.energy.tables import EnergyTable, load_table, table_names

__all__ = [
    "area_mm2", "mac_area_um2", "op_area_um2", "area_factor", "binary_mac_energy", "bitserial_step_energy", "describe_arch", "describe_presets",
    "dram_energy_per_bit", "edp_j_s", "energy_factor", "EnergyBreakdown", "EnergyItem", "EnergyTable",
    "load_table", "mac_energy", "op_energy", "parse_technology_nm", "power_mw", "price", "Quote", "retarget",
    "storage_energy", "sum_breakdowns", "table_names", "tops_per_w", "vector_actions", "voltage_factor",
]
