"""Bring your own model: one resolver for every command that takes a model.

``resolve_model(spec, weights=...)`` accepts

* a zoo name (seeded random weights, or hwsim's own trained weights for ``hwsim.trained.TRAINING``
  models when ``trained=True``);
* a zoo name plus ``weights``: a ``state_dict`` file (``torch.save(model.state_dict(), path)``, or a
  checkpoint dict holding one under ``"state_dict"``) loaded strictly into that architecture;
* a full-model ``.pt``/``.pth`` (a whole ``nn.Module`` saved with ``torch.save``, what ``hwsim compress``
  writes);
* a saved layer graph (``.json``) or an ONNX file: no torch module; only hardware-side commands use it.

A checkpoint that does not fit the architecture is one ``ConfigError`` listing what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError, UnknownNameError

GRAPH_SUFFIXES = (".json", ".onnx")
MODULE_SUFFIXES = (".pt", ".pth")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a torch module (or a graph file), its name, input shape and what its weights are."""

    spec: str
    name: str
    module: Any = None                          # torch.nn.Module, or None for a graph file
    sample_shape: tuple[int, ...] | None = None  # per-sample input shape (no batch) when known
    trained: bool = False                        # weights were trained (accuracy is meaningful)
    default_data: str | None = None              # the built-in dataset hwsim trained it on

    @property
    def graph_file(self) -> bool:
        return self.module is None


def is_graph_file(spec: Any) -> bool:
    """True for a saved layer graph or an ONNX file (read without torch)."""
    return isinstance(spec, (str, Path)) and Path(str(spec)).suffix.lower() in GRAPH_SUFFIXES


def is_model_file(spec: Any) -> bool:
    """True for a full-model ``.pt``/``.pth`` file name."""
    return isinstance(spec, (str, Path)) and Path(str(spec)).suffix.lower() in MODULE_SUFFIXES


def resolve_model(spec: str, *, weights: str | Path | None = None, seed: int = 0,
                  trained: bool = False) -> ModelSource:
    """Resolve ``spec`` (module docstring); ``trained=True`` gives hwsim-trained weights where it has them."""
    from hwsim import zoo

    text = str(spec)
    if is_graph_file(text):
        if weights is not None:
            raise ConfigError(f"--weights: {text} is a lowered graph; weights go with a zoo name")
        if not Path(text).is_file():
            raise ConfigError(f"model file {text!r} does not exist")
        return ModelSource(spec=text, name=Path(text).stem)
    if is_model_file(text):
        if weights is not None:
            raise ConfigError(f"--weights: {text} already holds a whole model; weights go with a zoo name")
        module = load_module_file(Path(text))
        shape = getattr(module, "input_shape", None)
        return ModelSource(spec=text, name=Path(text).stem, module=module, trained=True,
                           sample_shape=tuple(int(s) for s in shape) if shape else None)
    if text not in zoo.names():
        raise UnknownNameError(f"unknown model {text!r}: not a zoo name or a .pt/.pth/.json/.onnx file; "
                               f"zoo names: {', '.join(zoo.names())}")
    shape = tuple(zoo.input_shape(text))[1:]
    if weights is not None:
        module = zoo.create(text, seed=seed)
        load_weights(module, Path(weights), text)
        return ModelSource(spec=text, name=text, module=module.eval(), sample_shape=shape, trained=True)
    from hwsim.trained import trained_model

    found = trained_model(text, seed) if trained else None
    if found is not None:
        return ModelSource(spec=text, name=text, module=found[0], sample_shape=shape, trained=True,
                           default_data=found[1].name)
    return ModelSource(spec=text, name=text, module=zoo.create(text, seed=seed), sample_shape=shape)


def load_module_file(path: Path) -> Any:
    """A whole ``nn.Module`` saved with ``torch.save`` (a state_dict gets a pointer to ``--weights``)."""
    import torch

    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    try:
        loaded = torch.load(path, weights_only=False)
    except Exception as err:  # noqa: BLE001 - pickle and zip errors come in many types
        raise ConfigError(f"{path}: not a torch.save file ({type(err).__name__}: {err})") from None
    if isinstance(loaded, dict):
        raise ConfigError(f"{path}: holds a state_dict, not a whole model; pass the zoo architecture and "
                          f"--weights {path}")
    if not isinstance(loaded, torch.nn.Module):
        raise ConfigError(f"{path}: holds a {type(loaded).__name__}, not a whole torch.nn.Module")
    return loaded.eval()


def load_weights(module: Any, path: Path, name: str) -> None:
    """Load the state_dict in ``path`` into ``module`` (zoo model ``name``); one clear error on any mismatch."""
    import torch

    if not path.is_file():
        raise ConfigError(f"--weights {path}: no such file")
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, ... for non-state_dicts
        raise ConfigError(f"--weights {path}: not a plain state_dict file (a whole pickled model? give it as the "
                          "MODEL argument instead)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"--weights {path}: expected a state_dict (parameter name -> tensor)")
    if problems := weight_mismatches(module.state_dict(), state):
        raise ConfigError(f"--weights {path}: does not match zoo model {name!r}: {'; '.join(problems)}")
    module.load_state_dict(state)


def weight_mismatches(expected: dict[str, Any], given: dict[str, Any], *, shown: int = 3) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches between two state_dicts (first ``shown`` of each)."""
    def listed(keys: list[str]) -> str:
        more = f", ... {len(keys) - shown} more" if len(keys) > shown else ""
        return ", ".join(keys[:shown]) + more

    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    shapes = [f"{k} (checkpoint {'x'.join(map(str, given[k].shape))}, model {'x'.join(map(str, expected[k].shape))})"
              for k in sorted(expected.keys() & given.keys()) if tuple(expected[k].shape) != tuple(given[k].shape)]
    out = []
    if missing:
        out.append(f"{len(missing)} missing key(s): {listed(missing)}")
    if unexpected:
        out.append(f"{len(unexpected)} unexpected key(s): {listed(unexpected)}")
    if shapes:
        out.append(f"{len(shapes)} shape mismatch(es): {listed(shapes)}")
    return out


@dataclass(frozen=True)
class ModelInputs:
    """A resolved model with its data (``DataSplit`` or None) and full input shape (batch first)."""

    source: ModelSource
    data: Any = None
    input_shape: tuple[int, ...] | None = None


def resolve_with_data(model: str, *, weights: str | Path | None = None, data: str | None = None,
                      input_shape: tuple[int, ...] | None = None, batch: int | None = None, seed: int = 0,
                      trained: bool = False) -> ModelInputs:
    """``resolve_model`` plus ``data`` (``hwsim.datasets``; with ``trained``, the set hwsim trained the model
    on by default) and the input shape: ``input_shape``, else the model's own, else the data's. A bad
    checkpoint, data of the wrong shape, or an unknown shape is one ``ConfigError`` before any work."""
    from hwsim.datasets import check_shape, load_data

    source = resolve_model(model, weights=weights, seed=seed, trained=trained)
    if source.graph_file:
        if data is not None:
            raise ConfigError(f"--data: {model} is a lowered graph; data needs a torch model (zoo name or .pt file)")
        return ModelInputs(source)
    sample = tuple(input_shape[1:]) if input_shape else source.sample_shape
    name = data or source.default_data
    split = load_data(name, seed=seed, sample_shape=sample) if name else None
    if sample is None:
        if split is None:
            raise ConfigError(f"{model}: unknown input shape; give --input-shape (e.g. 1,3,32,32) or --data")
        sample = split.sample_shape
    if split is not None:
        check_shape(split, sample, source.name)
    return ModelInputs(source, split, (int(input_shape[0]) if input_shape else batch or 1, *sample))
