"""The ``Mapping`` of a layer onto a memory-level tree: explicit data a user can print, save, load and diff.

A mapping has one ``LevelMapping`` per memory level of the ArchSpec, outer (DRAM) to inner. Each level
lists its temporal loops outer-to-inner as ``(dim, bound)`` pairs, its spatial unrolling over the fan-out
to the next level (``spatial_x`` / ``spatial_y``), and the tensors it keeps (the others bypass it).
Loops of level ``L`` iterate over the tiles held by the next-inner level (Timeloop's convention); the
spatial loops of ``L`` sit below its temporal loops.

Loop dims are ``N G K C P Q R S`` with ``K`` and ``C`` counted *per group* (``Layer.K // Layer.G``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from hwsim.errors import ConfigError

DIMS: tuple[str, ...] = ("N", "G", "K", "C", "P", "Q", "R", "S")
TENSORS: tuple[str, ...] = ("W", "I", "O")

Loop = tuple[str, int]


def _loops(items: Iterable[Any], *, where: str) -> tuple[Loop, ...]:
    out = []
    for item in items or ():
        if isinstance(item, str):                  # "K16" or "K=16"
            dim, bound = item[0], item[1:].lstrip("=")
        elif isinstance(item, dict) and len(item) == 1:
            (dim, bound), = item.items()
        else:
            dim, bound = item
        if dim not in DIMS:
            raise ConfigError(f"{where}: unknown loop dim {dim!r} (valid: {' '.join(DIMS)})")
        try:
            bound = int(bound)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: loop bound of {dim} must be an integer (got {bound!r})") from None
        if bound < 1:
            raise ConfigError(f"{where}: loop bound of {dim} must be >= 1 (got {bound})")
        out.append((dim, bound))
    return tuple(out)


@dataclass(frozen=True)
class LevelMapping:
    """Loops and kept tensors of one memory level."""

    level: str
    temporal: tuple[Loop, ...] = ()
    spatial_x: tuple[Loop, ...] = ()
    spatial_y: tuple[Loop, ...] = ()
    keep: tuple[str, ...] = TENSORS

    def __post_init__(self) -> None:
        where = f"mapping level {self.level!r}"
        for name in ("temporal", "spatial_x", "spatial_y"):
            object.__setattr__(self, name, _loops(getattr(self, name), where=where))
        keep = tuple(t for t in TENSORS if t in tuple(self.keep))
        if unknown := sorted(set(self.keep) - set(TENSORS)):
            raise ConfigError(f"{where}: unknown tensor(s) {unknown} in keep (valid: W I O)")
        object.__setattr__(self, "keep", keep)

    @property
    def spatial(self) -> tuple[Loop, ...]:
        return self.spatial_x + self.spatial_y

    def factor(self, dim: str, *, spatial: bool | None = None) -> int:
        """Product of this level's loop bounds on ``dim`` (temporal, spatial or both)."""
        loops = {None: self.temporal + self.spatial, True: self.spatial, False: self.temporal}[spatial]
        return math.prod(b for d, b in loops if d == dim)


@dataclass(frozen=True)
class Mapping:
    """A complete mapping: one ``LevelMapping`` per memory level, outer to inner."""

    levels: tuple[LevelMapping, ...]
    source: str = ""                       # who produced it (mapper name, file)
    notes: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))

    def level(self, name: str) -> LevelMapping:
        for lvl in self.levels:
            if lvl.level == name:
                return lvl
        raise KeyError(f"no level {name!r} in mapping; levels: {[lvl.level for lvl in self.levels]}")

    def dim_product(self, dim: str) -> int:
        return math.prod(lvl.factor(dim) for lvl in self.levels)

    def bounds(self) -> dict[str, int]:
        return {dim: self.dim_product(dim) for dim in DIMS}

    def with_level(self, name: str, **changes: Any) -> "Mapping":
        """A copy with one level's fields replaced."""
        return replace(self, levels=tuple(replace(lvl, **changes) if lvl.level == name else lvl
                                          for lvl in self.levels))

    # ----- printing ---------------------------------------------------------------------------
    def to_loop_nest(self) -> str:
        """The mapping as an indented loop nest, outer to inner (Timeloop ``map.txt`` style)."""
        lines, depth = [], 0
        for lvl in self.levels:
            lines.append("  " * depth + f"{lvl.level} [keeps {' '.join(lvl.keep) or '-'}]")
            for dim, bound in lvl.temporal:
                if bound > 1:
                    lines.append("  " * depth + f"| for {dim} in [0:{bound})")
                    depth += 1
            for axis, loops in (("X", lvl.spatial_x), ("Y", lvl.spatial_y)):
                for dim, bound in loops:
                    if bound > 1:
                        lines.append("  " * depth + f"| spatial-for {dim} in [0:{bound}) ({axis})")
                        depth += 1
        lines.append("  " * depth + "<< MAC >>")
        return "\n".join(lines)

    __str__ = to_loop_nest

    # ----- YAML -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def loops(items: tuple[Loop, ...]) -> list[str]:
            return [f"{d}{b}" for d, b in items]
        return {"mapping": [
            {"level": lvl.level, "temporal": loops(lvl.temporal), "spatial_x": loops(lvl.spatial_x),
             "spatial_y": loops(lvl.spatial_y), "keep": list(lvl.keep)} for lvl in self.levels],
            "source": self.source}

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "<mapping>") -> "Mapping":
        if not isinstance(data, dict) or not isinstance(data.get("mapping"), list):
            raise ConfigError(f"{origin}: expected a top-level 'mapping:' list of levels")
        levels = []
        for i, entry in enumerate(data["mapping"]):
            if not isinstance(entry, dict) or "level" not in entry:
                raise ConfigError(f"{origin}: mapping[{i}]: each entry needs a 'level' name")
            if unknown := sorted(set(entry) - {"level", "temporal", "spatial_x", "spatial_y", "keep"}):
                raise ConfigError(f"{origin}: mapping[{i}]: unknown key(s) {unknown}")
            levels.append(LevelMapping(level=str(entry["level"]), temporal=entry.get("temporal") or (),
                                       spatial_x=entry.get("spatial_x") or (),
                                       spatial_y=entry.get("spatial_y") or (),
                                       keep=tuple(entry.get("keep", TENSORS))))
        return cls(levels=tuple(levels), source=str(data.get("source", origin)))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def save(self, path: str | Path) -> None:
        """Write the mapping as YAML."""
        Path(path).write_text(self.to_yaml())

    @classmethod
    def load(cls, path: str | Path) -> "Mapping":
        """Read a mapping YAML written by ``save`` (or by hand)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: mapping file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path.name}: malformed YAML: {str(err).splitlines()[0]}") from None
        return cls.from_dict(data, origin=path.name)

    # ----- diff -------------------------------------------------------------------------------
    def diff(self, other: "Mapping") -> list[str]:
        """Human-readable differences, one line per changed level field (empty when equal)."""
        out = []
        mine, theirs = {l.level: l for l in self.levels}, {l.level: l for l in other.levels}
        for name in list(mine) + [n for n in theirs if n not in mine]:
            a, b = mine.get(name), theirs.get(name)
            if a is None or b is None:
                out.append(f"{name}: only in {'other' if a is None else 'self'}")
                continue
            for attr in ("temporal", "spatial_x", "spatial_y", "keep"):
                if getattr(a, attr) != getattr(b, attr):
                    out.append(f"{name}.{attr}: {_fmt(getattr(a, attr))} -> {_fmt(getattr(b, attr))}")
        return out


def _fmt(items: tuple) -> str:
    return " ".join(f"{x[0]}{x[1]}" if isinstance(x, tuple) else str(x) for x in items) or "-"
