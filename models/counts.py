"""What an engine returns for one layer: cycles and action counts, no energy.

Engines are pure functions ``(Layer, ArchSpec, mapping) -> LayerCounts``; the energy pass
(``hwsim.models.energy.price``) turns counts into pJ, so a result can be re-priced under
another table, node or clock without re-simulating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["read", "write", "update", "metadata_read", "metadata_write"]


@dataclass(frozen=True)
class Access:
    """``count`` word accesses of ``tensor`` at memory ``level``, per instance of that level.

    ``tensor`` is ``W``, ``I`` or ``O`` (or ``W_meta``/``I_meta`` for sparse metadata); ``instances``
    is how many copies of the level did this much work (energy = per-instance cost x instances).
    """

    level: str
    tensor: str
    action: Action
    count: float
    instances: int = 1
    word_bits: int = 8

    @property
    def total(self) -> float:
        return self.count * self.instances


@dataclass(frozen=True)
class LayerCounts:
    """Cycle and action counts of one layer on one engine.

    ``mac_ops`` are MAC actions actually performed (effectual); ``gated_mac_ops`` are cycles a MAC
    unit was clock/data-gated on a zero operand (small energy, no work). ``active_pes`` is how many
    PE / multiplier instances the engine's mapping puts to work at once (the chip's "active PEs": the
    spatial unrolling without its padding, the array cells of the fullest fold, the lanes with work),
    at most ``compute.units``; 0 for layers with no MACs that no unit runs. ``details`` holds
    engine-specific figures (folds, mapping efficiency, SRAM sizes used) as name/value pairs.
    """

    compute_cycles: int
    mac_ops: float
    weight_bits: int
    act_bits: int
    stall_cycles: int = 0
    gated_mac_ops: float = 0.0
    vector_ops: float = 0.0
    mac_kind: Literal["int", "fp", "xnor", "bitserial"] = "int"
    accesses: tuple[Access, ...] = ()
    utilization: float = 0.0
    engine: str = ""
    active_pes: int = 0
    details: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    @property
    def cycles(self) -> int:
        return self.compute_cycles + self.stall_cycles

    def detail(self, name: str, default: float | None = None) -> float | None:
        return dict(self.details).get(name, default)

    def accesses_of(self, *, level: str | None = None, tensor: str | None = None,
                    action: str | None = None) -> float:
        """Total accesses (all instances) matching the given filters."""
        return sum(a.total for a in self.accesses
                   if (level is None or a.level == level) and (tensor is None or a.tensor == tensor)
                   and (action is None or a.action == action))
