"""Compress, then lower: the glue ``simulate(..., recipe=...)`` and ``hwsim lower --recipe`` use."""

from __future__ import annotations

from typing import Any

from hwsim.ir import LayerGraph


def compress_model(model: Any, recipe: Any, *, seed: int = 0, name: str | None = None
                   ) -> tuple[Any, Any, Any, str]:
    """Build (if a zoo name) and compress ``model`` with ``recipe``.

    Returns ``(original, compressed, report, name)``; the original is kept for fidelity checks. ``name``
    names a given module as the zoo model it is (e.g. trained ``digits_cnn`` weights).
    """
    import copy

    from hwsim import zoo
    from hwsim.compress.recipe import apply_recipe, load_recipe

    loaded = load_recipe(recipe)
    if model is None:
        model = getattr(loaded, "model", None)
    if isinstance(model, str):
        name, original = model, zoo.create(model, seed=seed)
    else:
        name, original = name or type(model).__name__, model
    shape = tuple(zoo.input_shape(name))[1:] if name in zoo.names() else None  # per-sample shape of *this* model
    compressed, report = apply_recipe(copy.deepcopy(original), loaded, seed=seed, input_shape=shape)
    return original, compressed, report, name


def compressed_graph(model: Any, recipe: Any, *, batch: int = 1, input_shape: tuple[int, ...] | None = None,
                     skip_unsupported: bool = False, seed: int = 0, profile: bool = True) -> LayerGraph:
    """Compress ``model`` (zoo name or ``nn.Module``) with ``recipe`` and lower the result (operand
    statistics measured on the compressed model unless ``profile=False``)."""
    from hwsim import zoo
    from hwsim.lower import lower

    _, compressed, report, name = compress_model(model, recipe, seed=seed)
    if input_shape is None and name in zoo.names():
        input_shape = zoo.input_shape(name, batch=batch)
    graph = lower(compressed, input_shape=input_shape, name=name, skip_unsupported=skip_unsupported,
                  profile=profile)
    graph.meta["compression"] = report.to_json() if hasattr(report, "to_json") else str(report)
    return graph
