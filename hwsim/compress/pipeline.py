"""Compress, (fine-tune,) then lower: the glue ``simulate(..., recipe=...)``, ``hwsim lower --recipe`` and
rank/sweep points use.

``measured_graph`` is one ranked variant: resolve the model (``hwsim.sources``), compress it with the
recipe, optionally retrain it (``hwsim.data.finetune``), lower it with the data's calibration batch,
and measure its fidelity: agreement with the uncompressed model and, when there is labelled data
(``--data``, or the set hwsim trained the model on), real top-1 accuracy on the held-out split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwsim.ir import LayerGraph


def compress_model(model: Any, recipe: Any, *, seed: int = 0, name: str | None = None, data: Any = None,
                   input_shape: tuple[int, ...] | None = None) -> tuple[Any, Any, Any, str]:
    """Build (if a zoo name) and compress ``model`` with ``recipe``.

    Returns ``(original, compressed, report, name)``; the original is kept for fidelity checks. ``name``
    names a given module as the zoo model it is (e.g. trained ``digits_cnn`` weights). ``data`` (a
    ``hwsim.datasets.DataSplit``) feeds calibration and the methods that train; ``input_shape`` (per
    sample) overrides the zoo's.
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
    shape = tuple(input_shape) if input_shape else shape
    if shape is None and data is not None:
        shape = data.sample_shape
    compressed, report = apply_recipe(copy.deepcopy(original), loaded, seed=seed, input_shape=shape,
                                      calib=None if data is None else data.calibration_batch(),
                                      data=None if data is None else data.as_tuple())
    return original, compressed, report, name


def compressed_graph(model: Any, recipe: Any, *, batch: int = 1, input_shape: tuple[int, ...] | None = None,
                     skip_unsupported: bool = False, seed: int = 0, name: str | None = None,
                     data: Any = None, profile: bool = True) -> LayerGraph:
    """Compress ``model`` (zoo name or ``nn.Module``) with ``recipe`` and lower the result (operand
    statistics measured on the compressed model unless ``profile=False``)."""
    from hwsim import zoo
    from hwsim.lower import lower

    _, compressed, report, name = compress_model(model, recipe, seed=seed, name=name, data=data,
                                                 input_shape=tuple(input_shape[1:]) if input_shape else None)
    if input_shape is None and name in zoo.names():
        input_shape = zoo.input_shape(name, batch=batch)
    graph = lower(compressed, input_shape=input_shape, name=name, skip_unsupported=skip_unsupported,
                  example_input=lowering_input(data, input_shape), profile=profile)
    graph.meta["compression"] = report.to_json() if hasattr(report, "to_json") else str(report)
    return graph


def lowering_input(data: Any, input_shape: tuple[int, ...] | None) -> Any:
    """Lowering's calibration input from ``data``: its first ``batch`` training images (None: no data)."""
    if data is None or input_shape is None:
        return None
    batch = int(input_shape[0])
    x = data.x_train
    if len(x) < batch:
        x = x.repeat((-(-batch // len(x)),) + (1,) * (x.dim() - 1))
    return x[:batch].contiguous()


@dataclass
class Variant:
    """A compressed (or uncompressed) model ready to lower, with its fidelity: the eager half of a build.

    Everything before ``lower`` runs in torch's eager mode and needs no ``torch.export``, so a sweep can
    make a variant in a process that has imported torch but not its (slower to import) export stack,
    save it (``torch.save``) and have another process lower it (``lower_variant``).
    """

    module: Any                             # the compressed nn.Module
    name: str
    input_shape: tuple[int, ...]            # with the batch
    example_input: Any                      # lowering's calibration batch (None: lowering makes its own)
    fidelity: dict[str, float]
    compression: Any = None                 # the recipe's report (``graph.meta["compression"]``), None if uncompressed


def measured_graph(model: str, recipe: Any, *, weights: str | None = None, data: str | None = None,
                   finetune_epochs: int = 0, batch: int = 1, input_shape: tuple[int, ...] | None = None,
                   fidelity_batch: int = 32, seed: int = 0) -> tuple[LayerGraph, dict[str, float]]:
    """One ranked variant of ``model`` (``recipe=None``: uncompressed): its graph and fidelity figures.

    Fidelity holds ``top1_agreement``/``kl``/``nrmse`` against the uncompressed model (on held-out data
    when there is any, else smooth noise), and with labelled data ``top1_accuracy`` (after
    ``finetune_epochs`` of retraining, with ``top1_accuracy_before_finetune`` beside it).
    """
    from hwsim.dse.evaluate import PERFECT_FIDELITY
    from hwsim.simulate import resolve_graph

    variant = measured_variant(model, recipe, weights=weights, data=data, finetune_epochs=finetune_epochs,
                               batch=batch, input_shape=input_shape, fidelity_batch=fidelity_batch, seed=seed)
    if variant is None:                                    # a saved graph: compressed without torch
        return resolve_graph(model, batch=batch, input_shape=input_shape, recipe=recipe), dict(PERFECT_FIDELITY)
    return lower_variant(variant), variant.fidelity


def measured_variant(model: str, recipe: Any, *, weights: str | None = None, data: str | None = None,
                     finetune_epochs: int = 0, batch: int = 1, input_shape: tuple[int, ...] | None = None,
                     fidelity_batch: int = 32, seed: int = 0) -> Variant | None:
    """``measured_graph`` up to its lowering (``None`` for a saved graph, which has no torch module)."""
    from hwsim.data import accuracy, finetune
    from hwsim.fidelity import output_fidelity, smooth_noise
    from hwsim.sources import resolve_with_data

    inputs = resolve_with_data(model, weights=weights, data=data, input_shape=input_shape, batch=batch, seed=seed,
                               trained=True)
    source, split, shape = inputs.source, inputs.data, inputs.input_shape
    if source.graph_file:
        return None
    sample = shape[1:]
    original, compressed, report = source.module, source.module, None
    if recipe is not None:
        original, compressed, report, _ = compress_model(source.module, recipe, seed=seed, name=source.name,
                                                         data=split, input_shape=sample)
    out: dict[str, float] = {}
    if split is not None:
        _check_classes(split, original, source.name)
        if finetune_epochs and recipe is not None:
            out["top1_accuracy_before_finetune"] = accuracy(compressed.eval(), split.x_test, split.y_test)
            finetune(compressed, split.as_tuple(), epochs=finetune_epochs, seed=seed)
        out["top1_accuracy"] = accuracy(compressed.eval(), split.x_test, split.y_test)
    probe = split.x_test[:fidelity_batch] if split is not None else smooth_noise((fidelity_batch, *sample), seed)
    out.update({k: float(v) for k, v in output_fidelity(original, compressed, probe).items()})
    compression = None if report is None else report.to_dict() if hasattr(report, "to_dict") else str(report)
    return Variant(compressed, source.name, tuple(shape), lowering_input(split, shape), out, compression)


def lower_variant(variant: Variant) -> LayerGraph:
    """Lower a ``Variant``'s module (the ``torch.export`` half of a build)."""
    from hwsim.lower import lower

    graph = lower(variant.module, input_shape=variant.input_shape, name=variant.name,
                  example_input=variant.example_input)
    if variant.compression is not None:
        graph.meta["compression"] = variant.compression
    return graph


def _check_classes(split: Any, model: Any, name: str) -> None:
    import torch

    from hwsim.errors import ConfigError

    with torch.no_grad():
        outputs = model.eval()(split.x_test[:1]).shape[-1]
    if split.num_classes > outputs:
        raise ConfigError(f"--data {split.name}: labels go up to {split.num_classes - 1} but model {name} "
                          f"outputs {outputs} classes")
