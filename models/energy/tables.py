"""Energy tables: pJ per action with a citation on every row, loaded from ``configs/energy/*.yaml``.

A table has four row groups: ``arithmetic`` (pJ per operation, optional area per unit), ``storage``
(pJ per vector access of ``width_bits`` for an SRAM or register file of ``size_bytes``), ``dram``
(pJ per bit by DRAM type) and ``constants`` (leakage and area densities, gating fraction). A table
may name a ``base`` table; every group key it does not define itself (an arithmetic ``(format, op)``,
a storage ``kind``, a DRAM ``type`` or a constant name) is inherited whole from the base, so rows
from different publications are never mixed inside one fit. Each row keeps the node it was measured
at (``technology_nm``; default the table's) so inherited rows scale correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt,
                      ValidationError)

from hwsim import _yaml
from hwsim.errors import ConfigError, UnknownNameError

DramKind = Literal["LPDDR4", "LPDDR5", "DDR3", "DDR4", "HBM2", "GDDR5", "GDDR6"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArithmeticRow(_Strict):
    op: Literal["add", "mult", "mac", "xnor", "popcount"]
    format: Literal["int", "fp"] = "int"
    bits: PositiveInt
    pj: NonNegativeFloat
    area_um2: NonNegativeFloat | None = None
    technology_nm: PositiveFloat | None = None
    source: str = Field(min_length=3)

    @property
    def row_id(self) -> str:
        return f"{self.format}{self.bits}_{self.op}"


class StorageRow(_Strict):
    kind: Literal["sram", "regfile"]
    size_bytes: PositiveFloat
    width_bits: PositiveInt
    read_pj: NonNegativeFloat
    write_pj: NonNegativeFloat | None = None
    technology_nm: PositiveFloat | None = None
    source: str = Field(min_length=3)

    @property
    def row_id(self) -> str:
        size = int(self.size_bytes) if float(self.size_bytes).is_integer() else self.size_bytes
        return f"{self.kind}_{size}B_{self.width_bits}b"


class DramRow(_Strict):
    type: DramKind
    pj_per_bit: PositiveFloat
    source: str = Field(min_length=3)

    @property
    def row_id(self) -> str:
        return f"dram_{self.type}"


class ConstantRow(_Strict):
    value: NonNegativeFloat
    technology_nm: PositiveFloat | None = None
    source: str = Field(min_length=3)


ConstantName = Literal["gated_mac_fraction", "sram_leak_pw_per_byte", "regfile_leak_pw_per_byte",
                       "sram_area_um2_per_byte", "regfile_area_um2_per_byte"]


class TableFile(_Strict):
    """The YAML schema of one table file."""

    name: str
    description: str = ""
    technology_nm: PositiveFloat
    voltage_v: PositiveFloat | None = None
    base: str | None = None
    default_dram: DramKind | None = None
    mac_accumulator: Literal["product", "operand"] | None = None
    source: str = ""
    arithmetic: tuple[ArithmeticRow, ...] = ()
    storage: tuple[StorageRow, ...] = ()
    dram: tuple[DramRow, ...] = ()
    constants: dict[ConstantName, ConstantRow] = Field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class EnergyTable:
    """A resolved table (base rows merged in); rows carry their own node and source (identity-hashed)."""

    name: str
    technology_nm: float
    voltage_v: float
    default_dram: str
    mac_accumulator: str
    arithmetic: tuple[ArithmeticRow, ...]
    storage: tuple[StorageRow, ...]
    dram: tuple[DramRow, ...]
    constants: tuple[tuple[str, ConstantRow], ...]
    description: str = ""

    def arithmetic_rows(self, op: str, number_format: str = "int") -> list[ArithmeticRow]:
        """Rows of one ``(format, op)`` group, sorted by bits."""
        return sorted((r for r in self.arithmetic if r.op == op and r.format == number_format),
                      key=lambda r: r.bits)

    def storage_rows(self, kind: str) -> list[StorageRow]:
        return [r for r in self.storage if r.kind == kind]

    def dram_row(self, dram_type: str | None) -> DramRow:
        wanted = dram_type or self.default_dram
        for row in self.dram:
            if row.type == wanted:
                return row
        raise ConfigError(f"energy table {self.name}: no dram row for {wanted!r} "
                          f"(allowed: {', '.join(r.type for r in self.dram)})")

    def constant(self, name: str) -> ConstantRow:
        for key, row in self.constants:
            if key == name:
                return row
        raise ConfigError(f"energy table {self.name}: no constant {name!r} "
                          f"(allowed: {', '.join(k for k, _ in self.constants)})")

    def row(self, row_id: str) -> ArithmeticRow | StorageRow | DramRow | ConstantRow:
        """Any row by its id (``int8_mult``, ``sram_8192B_64b``, ``dram_LPDDR4``, ``sram_leak_pw_per_byte``)."""
        for group in (self.arithmetic, self.storage, self.dram):
            for item in group:
                if item.row_id == row_id:
                    return item
        for key, item in self.constants:
            if key == row_id:
                return item
        raise UnknownNameError(f"energy table {self.name} has no row {row_id!r}; rows: {', '.join(self.row_ids())}")

    def row_ids(self) -> list[str]:
        ids = [r.row_id for group in (self.arithmetic, self.storage, self.dram) for r in group]
        return ids + [key for key, _ in self.constants]


def _tables_dir():
    return resources.files("hwsim.configs") / "energy"


def table_names() -> list[str]:
    """Stems of the shipped energy tables."""
    return sorted(entry.name[:-5] for entry in _tables_dir().iterdir() if entry.name.endswith(".yaml"))


def _read_table_file(name_or_path: str) -> tuple[TableFile, str]:
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"{name_or_path}: energy table file not found")
        text, origin = path.read_text(), path.name
    else:
        if name_or_path not in table_names():
            raise UnknownNameError(f"unknown energy table {name_or_path!r}; tables: {', '.join(table_names())}")
        text, origin = (_tables_dir() / f"{name_or_path}.yaml").read_text(), f"{name_or_path}.yaml"
    try:
        data = _yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{origin}: malformed YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return TableFile.model_validate(data), origin
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "<root>"
        msg = "unknown key (extra keys are not allowed)" if first["type"] == "extra_forbidden" else first["msg"]
        got = first.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        raise ConfigError(f"{origin}: {key}: {msg}{shown}") from None


def _with_node(rows, node: float) -> tuple:
    return tuple(r if r.technology_nm is not None else r.model_copy(update={"technology_nm": node}) for r in rows)


def _merge(own: tuple, inherited: tuple, group_key) -> tuple:
    defined = {group_key(r) for r in own}
    return own + tuple(r for r in inherited if group_key(r) not in defined)


def load_table(name_or_path: str = "horowitz_45nm") -> EnergyTable:
    """Load and resolve an energy table by name (``horowitz_45nm``) or YAML path (cached)."""
    return _resolve(str(name_or_path), ())


@lru_cache(maxsize=32)
def _resolve(name_or_path: str, _chain: tuple[str, ...]) -> EnergyTable:
    spec, origin = _read_table_file(name_or_path)
    node = spec.technology_nm
    arithmetic, storage = _with_node(spec.arithmetic, node), _with_node(spec.storage, node)
    constants = {k: (v if v.technology_nm is not None else v.model_copy(update={"technology_nm": node}))
                 for k, v in spec.constants.items()}
    dram = spec.dram
    default_dram, accumulator, voltage = spec.default_dram, spec.mac_accumulator, spec.voltage_v
    if spec.base is not None:
        if spec.base in _chain or spec.base == name_or_path:
            raise ConfigError(f"{origin}: base: circular table inheritance through {spec.base!r}")
        base = _resolve(spec.base, _chain + (name_or_path,))
        arithmetic = _merge(arithmetic, base.arithmetic, lambda r: (r.format, r.op))
        storage = _merge(storage, base.storage, lambda r: r.kind)
        dram = _merge(dram, base.dram, lambda r: r.type)
        constants = {**dict(base.constants), **constants}
        default_dram = default_dram or base.default_dram
        accumulator = accumulator or base.mac_accumulator
        voltage = voltage or base.voltage_v
    if not dram:
        raise ConfigError(f"{origin}: dram: the table (with its base) has no DRAM rows")
    return EnergyTable(name=spec.name, technology_nm=node, voltage_v=voltage or 0.9,
                       default_dram=default_dram or dram[0].type, mac_accumulator=accumulator or "product",
                       arithmetic=arithmetic, storage=storage, dram=dram,
                       constants=tuple(sorted(constants.items())), description=spec.description)
