"""Mappers (installed as ``hwsim.mappers``): the ``Mapping`` data and the mappers that produce it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hwsim.mappers.mapping import DIMS, TENSORS, LevelMapping, Mapping


@runtime_checkable
class Mapper(Protocol):
    """Anything that maps a layer onto an architecture."""

    def map(self, layer: Any, arch: Any) -> Any: ...


class DefaultMapper:
    """The engine's own fixed-dataflow mapping (``hwsim.models.<engine>.default_mapping``)."""

    def map(self, layer: Any, arch: Any) -> Any:
        from hwsim.models import get_engine
        return get_engine(arch.engine).default_mapping(layer, arch)


def __getattr__(name: str) -> Any:          # SearchMapper imports the spatial engine; load it lazily
    if name == "SearchMapper":
        from hwsim.mappers.search import SearchMapper
        return SearchMapper
    if name == "LomaMapper":
        from hwsim.mappers.loma import LomaMapper
        return LomaMapper
    raise AttributeError(name)


__all__ = ["DIMS", "TENSORS", "DefaultMapper", "LevelMapping", "LomaMapper", "Mapper", "Mapping", "SearchMapper"]
