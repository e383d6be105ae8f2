"""Recipe templates in sweep specs: a recipe (file, shipped name, dict or steps) with ``${name}`` placeholders.

``recipe_template`` loads a spec entry's template and checks that its placeholders and the entry's
``params`` match exactly; ``substitute`` fills in one point's values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hwsim import _yaml
from hwsim.errors import ConfigError

if TYPE_CHECKING:
    from hwsim.dse.spec import SweepSpec

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def recipe_template(spec: SweepSpec, name: str) -> Any:
    """The recipe template's data (file contents for a path / shipped name), placeholders checked."""
    entry = spec.recipes[name]
    if entry is None:
        return None
    template = entry.template
    if isinstance(template, str):
        from importlib.resources import files

        path = Path(template)
        if not path.is_file():
            path = Path(str(files("hwsim.configs") / "recipes" / f"{template}.yaml"))
        if not path.is_file():
            raise ConfigError(f"{spec.origin}: recipes.{name}: recipe {template!r} is neither a file nor a "
                              f"shipped recipe in configs/recipes/")
        template = _yaml.safe_load(path.read_text())
    used = set(_placeholders(template))
    given = set(entry.params)
    if used - given:
        raise ConfigError(f"{spec.origin}: recipes.{name}: placeholder(s) {sorted(used - given)} have no "
                          f"value in params (params: {sorted(given)})")
    if given - used:
        raise ConfigError(f"{spec.origin}: recipes.{name}: param(s) {sorted(given - used)} are not used by "
                          f"the template (write them as \"${{name}}\")")
    return template


def _placeholders(data: Any):
    if isinstance(data, str):
        yield from _PLACEHOLDER.findall(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _placeholders(key)
            yield from _placeholders(value)
    elif isinstance(data, (list, tuple)):
        for item in data:
            yield from _placeholders(item)


def substitute(template: Any, params: dict[str, Any]) -> Any:
    """``template`` with ``${name}`` replaced: a whole-string placeholder keeps the value's type."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return params[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), template)
    if isinstance(template, dict):
        return {substitute(k, params): substitute(v, params) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return [substitute(item, params) for item in template]
    return template
