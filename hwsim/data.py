"""The small real dataset used for trained-from-scratch checks: scikit-learn's digits (1797 8x8 images).

``load_digits_tensors`` returns a deterministic train/test split as torch tensors and
``train_classifier`` is the tiny Adam loop every trainable compression method shares.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np

DIGITS_INPUT_SHAPE = (1, 8, 8)   # channels, rows, cols of one digits image
_TEST_FRACTION = 0.25


@lru_cache(maxsize=4)
def _digits_arrays(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0 - 0.5) / 0.5   # pixel values 0..16 -> [-1, 1]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * _TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def load_digits_tensors(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """Digits as ``(x_train, y_train, x_test, y_test)``; images are float ``(N, 1, 8, 8)`` in [-1, 1]."""
    import torch

    x_train, y_train, x_test, y_test = _digits_arrays(int(seed))
    return (torch.from_numpy(x_train).unsqueeze(1), torch.from_numpy(y_train),
            torch.from_numpy(x_test).unsqueeze(1), torch.from_numpy(y_test))


def accuracy(model: Any, x: Any, y: Any, *, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in eval mode (the mode is restored afterwards)."""
    import torch

    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size])
            correct += int((logits.argmax(dim=1) == y[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def train_classifier(model: Any, data: tuple[Any, Any, Any, Any], *, epochs: int, lr: float = 1e-2,
                     seed: int = 0, extra_loss: Callable[[Any], Any] | None = None,
                     after_step: Callable[[Any], None] | None = None, batch_size: int = 64,
                     weight_decay: float = 0.0, optimizer: str = "adam") -> float:
    """Train ``model`` with Adam (or SGD+momentum) + cross-entropy (+ ``extra_loss(model)``); return test accuracy.

    ``after_step(model)`` runs after every optimizer step (projections, clipping, masks). Use
    ``optimizer="sgd"`` for sparsity penalties: Adam's per-weight normalization blunts L1/group lasso.
    """
    import torch

    if data is None:
        from hwsim.errors import ConfigError

        raise ConfigError("this method trains the model and needs data=(x_train, y_train, x_test, y_test) "
                          "matching the model input (digits is only the default for 1x8x8 models)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # tiny batches: one thread is faster and immune to a busy machine
    try:
        return _train(model, data, epochs=epochs, lr=lr, seed=seed, extra_loss=extra_loss, after_step=after_step,
                      batch_size=batch_size, weight_decay=weight_decay, optimizer=optimizer)
    finally:
        torch.set_num_threads(threads)


def _train(model: Any, data: tuple[Any, Any, Any, Any], *, epochs: int, lr: float, seed: int,
           extra_loss: Callable[[Any], Any] | None, after_step: Callable[[Any], None] | None,
           batch_size: int, weight_decay: float, optimizer: str) -> float:
    import torch
    import torch.nn.functional as F

    x_train, y_train, x_test, y_test = data
    generator = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            if extra_loss is not None:
                loss = loss + extra_loss(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(model)
    model.eval()
    return accuracy(model, x_test, y_test)


@lru_cache(maxsize=4)
def _trained_state(seed: int, epochs: int) -> tuple[dict[str, Any], float]:
    from hwsim import zoo

    model = zoo.create("digits_cnn", seed=seed)
    acc = train_classifier(model, load_digits_tensors(seed), epochs=epochs, lr=3e-3, seed=seed)
    return {k: v.clone() for k, v in model.state_dict().items()}, acc


def trained_digits_cnn(seed: int = 0, *, epochs: int = 5) -> tuple[Any, float]:
    """A fresh ``digits_cnn`` trained on digits (cached per process) and its test accuracy (~0.99, ~1 s)."""
    from hwsim import zoo

    state, acc = _trained_state(int(seed), int(epochs))
    model = zoo.create("digits_cnn", seed=seed)
    model.load_state_dict(state)
    return model.eval(), acc


# zoo models hwsim can train itself on data it ships (scikit-learn's digits): name -> trainer
TRAINABLE = {"digits_cnn": trained_digits_cnn}


def trained_model(name: str, seed: int = 0) -> tuple[Any, tuple[Any, Any]] | None:
    """``(trained model, (x_test, y_test))`` for a zoo model hwsim can train on shipped data, else ``None``."""
    trainer = TRAINABLE.get(name) if isinstance(name, str) else None
    if trainer is None:
        return None
    model, _ = trainer(seed)
    _, _, x_test, y_test = load_digits_tensors(seed)
    return model, (x_test, y_test)
