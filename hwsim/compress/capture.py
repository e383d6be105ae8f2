"""Run a model once with temporary hooks: the calibration pass that quantizers, pruners and KD share."""

from __future__ import annotations

from typing import Any, Iterable


def forward_with_hooks(model: Any, sample: Any, handles: Iterable[Any]) -> None:
    """Forward ``sample`` through ``model`` in eval mode without grad, then remove ``handles`` and restore the mode."""
    import torch

    handles = list(handles)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
