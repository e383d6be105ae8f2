"""Systolic-array engine (TPU-like WS/OS/IS arrays): ``default_mapping`` and ``evaluate``.

Two modes, chosen by ``arch.systolic.mode`` (copied into the mapping, where a user may change it):

* ``"physical"`` (default): hwsim's own model, see ``physical.py`` for every difference from
  SCALE-Sim and why (real padding, shrinking partial folds, double-buffered stationary tiles,
  per-group GEMMs packed block-diagonally, multiple arrays, DRAM traffic from tile reuse).
* ``"scalesim"``: reproduces SCALE-Sim 3.0.0's reports, quirks included (``compat.py``).

The array is dense: zeros are not skipped, so ``mac_ops`` is ``layer.macs``. Array parameters come
from ``arch.systolic``, SRAM sizes from the level directly above the array (``arch.memory[-1]``),
DRAM bandwidth from ``arch.memory[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from hwsim.errors import ConfigError, InvalidMappingError, UnsupportedOpError
from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec
from hwsim.models.counts import LayerCounts

__all__ = ["SystolicMapping", "default_mapping", "evaluate", "check_mapping"]


@dataclass(frozen=True)
class SystolicMapping:
    """How a layer runs on the array(s): explicit data a user can print, diff and edit.

    ``groups``: ``"pack"`` places several small groups block-diagonally in one fold (physical mode),
    ``"serial"`` runs groups one after another (always the case in scalesim mode).
    ``overlap_swaps``: double-buffered stationary registers (physical mode only; on by default when
    the SRAM above the array is double-buffered, so the next tile can be read while one streams).
    ``buffer_model``: scalesim mode DRAM/stalls from the closed forms (compulsory reads, no stalls)
    or from the Numba port of SCALE-Sim's buffers (``"simulate"``).
    """

    dataflow: Literal["ws", "os", "is"]
    rows: int
    cols: int
    cores: int = 1
    mode: Literal["physical", "scalesim"] = "physical"
    groups: Literal["pack", "serial"] = "pack"
    overlap_swaps: bool = True
    buffer_model: Literal["closed", "simulate"] = "closed"
    interface_bandwidth: Literal["CALC", "USER"] = "CALC"

    def with_params(self, **changes: object) -> "SystolicMapping":
        """A copy with some fields replaced (unknown names rejected)."""
        valid = {f.name for f in fields(self)}
        if unknown := sorted(changes.keys() - valid):
            raise ValueError(f"unknown SystolicMapping parameter(s) {unknown}; valid: {sorted(valid)}")
        return replace(self, **changes)


def default_mapping(layer: Layer, arch: ArchSpec) -> SystolicMapping:
    """The array's fixed mapping for ``layer`` (dataflow, size and mode from ``arch.systolic``)."""
    params = arch.systolic
    if params is None:
        raise ConfigError(f"{arch.name}: the systolic engine needs a 'systolic' section")
    scalesim = params.mode == "scalesim"
    double_buffered = len(arch.memory) > 1 and arch.memory[-1].double_buffered
    return SystolicMapping(dataflow=params.dataflow, rows=params.rows, cols=params.cols, cores=params.cores,
                           mode=params.mode, groups="serial" if scalesim else "pack",
                           overlap_swaps=double_buffered, buffer_model="closed",
                           interface_bandwidth=params.interface_bandwidth)


def check_mapping(layer: Layer, arch: ArchSpec, mapping: SystolicMapping) -> list[str]:
    """Every reason ``mapping`` cannot run ``layer`` on ``arch`` (empty: valid)."""
    problems = []
    params = arch.systolic
    if mapping.dataflow not in ("ws", "os", "is"):
        problems.append(f"dataflow must be ws, os or is, got {mapping.dataflow!r}")
    for name in ("rows", "cols", "cores"):
        value = getattr(mapping, name)
        if not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive integer, got {value!r}")
        elif params is not None and value > getattr(params, name):
            problems.append(f"{name}={value} exceeds the architecture's {getattr(params, name)}")
    if mapping.mode not in ("physical", "scalesim"):
        problems.append(f"mode must be 'physical' or 'scalesim', got {mapping.mode!r}")
    if mapping.mode == "scalesim" and mapping.cores != 1:
        problems.append("scalesim mode models a single array (cores must be 1)")
    if len(arch.memory) < 2:
        problems.append(f"{arch.name}: needs an on-chip SRAM level above the array, memory has only DRAM")
    return problems


def evaluate(layer: Layer, arch: ArchSpec, mapping: SystolicMapping) -> LayerCounts:
    """Cycles, stalls and per-level access counts of one MAC layer (pure; no energy)."""
    if not layer.op.has_macs:
        raise UnsupportedOpError(f"layer {layer.name!r}: op {layer.op.value} is not a MAC layer; "
                                 "use hwsim.models.vector for it")
    if problems := check_mapping(layer, arch, mapping):
        raise InvalidMappingError(layer.name, problems)
    if mapping.mode == "scalesim":
        from hwsim.models.systolic.compat_engine import evaluate_compat
        return evaluate_compat(layer, arch, mapping)
    from hwsim.models.systolic.physical import evaluate_physical
    return evaluate_physical(layer, arch, mapping)
