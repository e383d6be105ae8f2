"""Zoo models hwsim trains itself on data a package ships, seeded, on first use, cached on disk.

``TRAINING`` names each trainable zoo model's dataset (``hwsim.datasets``) and training settings.
``trained_zoo_model(name, seed)`` trains it with ``hwsim.data.train_classifier`` once per machine and
keeps the weights and held-out accuracy in ``<cache_dir>/trained/`` (``hwsim._cache``; no weights in the
repository); later calls load them. The cache key covers the model, its options, the seed, the training
settings and the torch version, so a change retrains instead of loading stale weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hwsim._cache import cache_dir


@dataclass(frozen=True)
class Training:
    """How one zoo model is trained: dataset, epochs, peak learning rate, LR schedule, torch threads."""

    data: str
    epochs: int
    lr: float
    schedule: str = "constant"
    threads: int = 1


# Settings chosen so each run takes seconds to about a minute on 2 CPU cores (measured figures are in the
# zoo descriptions and the tests); the 32x32 models need the one-cycle schedule to converge that fast.
TRAINING = {
    "digits_cnn": Training("digits", epochs=5, lr=3e-3),
    "digits_resnet18": Training("digits32", epochs=6, lr=3e-3, schedule="one_cycle", threads=2),
    "digits_mobilenet_v2": Training("digits32", epochs=10, lr=1e-2, schedule="one_cycle", threads=2),
}


def trainable() -> list[str]:
    """Zoo models hwsim can train itself."""
    return list(TRAINING)


def training_data(name: str) -> str:
    """The built-in dataset ``name`` trains on (and is evaluated on by default)."""
    return TRAINING[name].data


def _weights_path(name: str, seed: int, settings: Training, options: dict[str, Any]) -> Path:
    import torch

    key = json.dumps({"name": name, "seed": seed, "training": asdict(settings), "options": options,
                      "torch": torch.__version__, "format": 1}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "trained" / f"{name}-seed{seed}-{digest}.pt"


@lru_cache(maxsize=8)
def _trained_state(name: str, seed: int, settings: Training, options_json: str) -> tuple[dict[str, Any], float]:
    import torch

    from hwsim import zoo
    from hwsim.data import train_classifier
    from hwsim.datasets import load_data

    options = json.loads(options_json)
    path = _weights_path(name, seed, settings, options)
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return saved["state_dict"], float(saved["accuracy"])
    model = zoo.create(name, seed=seed, **options)
    data = load_data(settings.data, seed=seed).as_tuple()
    acc = train_classifier(model, data, epochs=settings.epochs, lr=settings.lr, seed=seed,
                           schedule=settings.schedule, threads=settings.threads)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _save_atomic(path, {"state_dict": state, "accuracy": acc})
    return state, acc


def _save_atomic(path: Path, payload: dict[str, Any]) -> None:
    import torch

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".weights-", suffix=".tmp")
        os.close(fd)
        torch.save(payload, tmp)
        os.replace(tmp, path)      # a concurrent reader sees no file or the whole file
    except OSError:
        pass                       # the cache is an optimisation: an unwritable cache dir retrains next time


def trained_zoo_model(name: str, seed: int = 0, *, epochs: int | None = None, **options: Any) -> tuple[Any, float]:
    """Zoo model ``name`` with trained weights (trained on first use, then cached) and its held-out accuracy.

    ``epochs`` overrides the registered epoch count; ``options`` are zoo options (e.g. ``width``).
    """
    from dataclasses import replace

    from hwsim import zoo

    settings = TRAINING[name] if epochs is None else replace(TRAINING[name], epochs=int(epochs))
    state, acc = _trained_state(name, int(seed), settings, json.dumps(options, sort_keys=True))
    model = zoo.create(name, seed=seed, **options)
    model.load_state_dict(state)
    return model.eval(), acc


def trained_model(name: Any, seed: int = 0) -> tuple[Any, Any] | None:
    """``(trained model, its DataSplit)`` for a zoo model hwsim trains on shipped data, else ``None``."""
    if not isinstance(name, str) or name not in TRAINING:
        return None
    from hwsim.datasets import load_data

    model, _ = trained_zoo_model(name, seed)
    return model, load_data(training_data(name), seed=seed)
