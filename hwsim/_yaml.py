"""``safe_load`` with libyaml's C parser when PyYAML has it (the pure-Python parser is ~10x slower:
~40 ms of a warm ``hwsim simulate`` went to reading the preset and its energy table).

Objects are built by the same ``SafeConstructor`` and implicit-tag resolver either way, so the data
is the same. A document the C parser rejects is parsed again by the pure-Python one, so errors keep
their messages (problem, line, column) whichever parser PyYAML was built with.
"""

from __future__ import annotations

from typing import Any

import yaml

_C_SAFE_LOADER = getattr(yaml, "CSafeLoader", None)


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, faster."""
    if _C_SAFE_LOADER is not None:
        try:
            return yaml.load(text, Loader=_C_SAFE_LOADER)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)
