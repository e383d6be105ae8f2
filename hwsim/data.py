"""The small real dataset used for trained-from-scratch checks: scikit-learn's digits (1797 8x8 images).

``load_digits_tensors`` returns a deterministic train/test split as torch tensors,
``train_classifier`` is the tiny Adam loop every trainable compression method shares, and ``finetune``
is the one retraining path after compression (Han et al.'s prune -> retrain: pruned weights stay zero,
quantized layers stay on their grid) that pruning methods and ``hwsim rank --finetune-epochs`` use.
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
                     weight_decay: float = 0.0, optimizer: str = "adam", schedule: str = "constant",
                     threads: int = 1) -> float:
    """Train ``model`` with Adam (or SGD+momentum) + cross-entropy (+ ``extra_loss(model)``); return test accuracy.

    ``after_step(model)`` runs after every optimizer step (projections, clipping, masks). Use
    ``optimizer="sgd"`` for sparsity penalties: Adam's per-weight normalization blunts L1/group lasso.
    ``schedule="one_cycle"`` ramps the learning rate up to ``lr`` and anneals it (Smith & Topin 2019,
    ``torch.optim.lr_scheduler.OneCycleLR``): from-scratch training of the 32x32 digits models converges in
    a few epochs with it. ``threads`` torch threads train (restored afterwards; a fixed count keeps runs
    bit-reproducible on one machine).
    """
    import torch

    if data is None:
        from hwsim.errors import ConfigError

        raise ConfigError("this method trains the model and needs data=(x_train, y_train, x_test, y_test) "
                          "matching the model input (digits is only the default for 1x8x8 models)")
    if schedule not in ("constant", "one_cycle"):
        raise ValueError(f"schedule: expected constant or one_cycle (got {schedule!r})")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))      # tiny batches: one thread is faster and immune to a busy machine
    try:
        return _train(model, data, epochs=epochs, lr=lr, seed=seed, extra_loss=extra_loss, after_step=after_step,
                      batch_size=batch_size, weight_decay=weight_decay, optimizer=optimizer, schedule=schedule)
    finally:
        torch.set_num_threads(previous)


def _train(model: Any, data: tuple[Any, Any, Any, Any], *, epochs: int, lr: float, seed: int,
           extra_loss: Callable[[Any], Any] | None, after_step: Callable[[Any], None] | None,
           batch_size: int, weight_decay: float, optimizer: str, schedule: str) -> float:
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
    steps = int(epochs) * -(-len(x_train) // batch_size)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
                 if schedule == "one_cycle" and steps else None)
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
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(model)
    model.eval()
    return accuracy(model, x_test, y_test)


def _frozen_on_grid(module: Any) -> bool:
    meta = getattr(module, "hwsim_meta", None) or {}
    return meta.get("weight_bits") is not None or meta.get("number_format") not in (None, "float")


def finetune(model: Any, data: tuple[Any, Any, Any, Any], *, epochs: int, lr: float = 1e-3, seed: int = 0,
             optimizer: str = "adam", threads: int = 1) -> float:
    """Retrain a compressed ``model`` for ``epochs`` keeping its compression; return test accuracy.

    Han et al. (Learning both Weights and Connections, NIPS 2015, Section 3) retrain the surviving weights
    after pruning: every conv/linear weight that is exactly zero now stays zero (a mask re-applied after
    each step). Layers whose weights were quantized or binarized (``hwsim_meta`` ``weight_bits`` or a
    non-float ``number_format``) are frozen so their weights stay on their grid; BatchNorm and the other
    layers train. Returns the held-out accuracy after retraining (``epochs == 0``: without retraining).
    """
    import torch

    if epochs <= 0:
        return accuracy(model, data[2], data[3])
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))]
    frozen = [m for m in layers if _frozen_on_grid(m)]
    for module in frozen:
        module.weight.requires_grad_(False)
    masks = [(m, m.weight.detach() != 0) for m in layers if m not in frozen and bool((m.weight == 0).any())]

    def keep_zeros(_model: Any) -> None:
        for module, mask in masks:
            module.weight.mul_(mask)
    try:
        return train_classifier(model, data, epochs=epochs, lr=lr, seed=seed, optimizer=optimizer,
                                after_step=keep_zeros if masks else None, threads=threads)
    finally:
        for module in frozen:
            module.weight.requires_grad_(True)


def trained_digits_cnn(seed: int = 0, *, epochs: int = 5) -> tuple[Any, float]:
    """A fresh ``digits_cnn`` trained on digits (cached) and its test accuracy (~0.99, ~1 s)."""
    from hwsim.trained import trained_zoo_model

    return trained_zoo_model("digits_cnn", seed, epochs=epochs)
