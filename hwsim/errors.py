"""Typed exceptions. Library code raises these; only ``hwsim.cli`` turns them into exit codes."""

from __future__ import annotations


class HwsimError(Exception):
    """Base class of every error hwsim raises on purpose. ``exit_code`` 2 = bad input, 1 = failed run."""

    exit_code = 1


class ConfigError(HwsimError, ValueError):
    """A configuration file or value is malformed or impossible (names file, key and value)."""

    exit_code = 2


class UnsupportedOpError(HwsimError, ValueError):
    """The lowering met an operator it cannot model (names op and module path)."""

    exit_code = 2


class UnknownNameError(HwsimError, KeyError):
    """A model, architecture, method or preset name is not known (lists the valid names)."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class InvalidMappingError(HwsimError, ValueError):
    """A mapping violates the architecture or the layer (lists every reason)."""

    exit_code = 2

    def __init__(self, layer_name: str, problems: list[str]):
        self.layer_name = layer_name
        self.problems = list(problems)
        super().__init__(f"mapping for layer {layer_name!r} is invalid: " + "; ".join(self.problems))
