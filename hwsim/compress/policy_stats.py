"""Measure, once per layer and choice, what a compression policy does to the weights and activations.

The policy search (``hwsim.dse.autocompress``) prices hundreds of candidates by editing the
``LayerGraph`` (``hwsim.dse.policy.apply_policy``); the data-dependent facts it needs (density,
structure and mask of each pruned + quantized weight, quantized activation density and essential
bits) come from here, computed with the functions the recipe methods themselves use, so an edited
graph matches the compressed-and-lowered one.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

import torch

from hwsim.compress.channel_prune import _consumer_columns, _l1_select, find_chains
from hwsim.compress.lowrank import svd_factorize
from hwsim.compress.prune import _keep_top, block_mask, nm_mask
from hwsim.compress.quantize import act_facts, calibrate_act, layer_inputs, quantize_weight
from hwsim.dse.policy import LayerPolicy, LayerStats, channel_ratio, weight_key
from hwsim.lower import weight_facts


def prunable_channels(model: Any) -> dict[str, str]:
    """``{producer: consumer}`` for every layer whose output channels ``l1_filter_prune`` can remove."""
    return {path: chain.consumer for path, chain in find_chains(model).items()}


def compressed_weight(weight: torch.Tensor, lp: LayerPolicy) -> torch.Tensor:
    """``weight`` after ``lp``'s mask pruning and then its weight quantization (the recipe's order)."""
    w = weight.detach().clone()
    matrix = w.reshape(w.shape[0], -1)
    kind = lp.mask_key[0]
    if kind == "unstructured":
        mask = _keep_top(matrix.abs(), matrix.numel() - int(round(lp.sparsity * matrix.numel())))
        matrix.mul_(mask.to(w.dtype))
    elif kind == "nm" and matrix.shape[1] % lp.m == 0:
        matrix.mul_(nm_mask(matrix, lp.n, lp.m).to(w.dtype))
    elif kind == "block":
        matrix.mul_(block_mask(matrix, lp.block, lp.sparsity).to(w.dtype))
    if lp.weight_bits is not None:
        quantize_weight(SimpleNamespace(weight=w), lp.weight_bits, per_channel=True, symmetric=True)
    return w


def _facts(w: torch.Tensor) -> Any:
    return weight_facts((w != 0).reshape(w.shape[0], -1).cpu().numpy(), keep_mask=True)


def _with_weight(module: Any, weight: torch.Tensor) -> Any:
    """A copy of a Conv2d/Linear ``module`` holding ``weight`` (fewer input channels after channel removal)."""
    copy_ = copy.deepcopy(module)
    copy_.weight = torch.nn.Parameter(weight.detach().clone())
    if isinstance(copy_, torch.nn.Linear):
        copy_.in_features = weight.shape[1]
    else:
        copy_.in_channels = weight.shape[1] * copy_.groups
    return copy_


def _kept_filters(model: Any, chain: Any, ratio: float) -> torch.Tensor:
    return torch.sort(_l1_select(model, chain, ratio=ratio, multiple=1)[0]).values


def measure_layer_stats(model: Any, choices: Mapping[str, Iterable[LayerPolicy]], *, calib: Any = None,
                        act_bits: Iterable[int] = ()) -> LayerStats:
    """``LayerStats`` for every layer path and choice in ``choices`` (and each activation bit width).

    A choice that removes channels also gets the consumer's weight measured without those input
    channels, for each of the consumer's own choices.
    """
    chains = find_chains(model)
    stats = LayerStats(consumers={p: c.consumer for p, c in chains.items()})
    options = {path: list(opts) for path, opts in choices.items()}
    in_ratios: dict[str, set[float]] = {}
    for path, opts in options.items():
        for lp in opts:
            if channel_ratio(lp) > 0 and path in chains:
                in_ratios.setdefault(chains[path].consumer, set()).add(channel_ratio(lp))
    for path in sorted(options.keys() | in_ratios.keys()):
        module = model.get_submodule(path)
        for lp in options.get(path, [LayerPolicy()]):
            for in_ratio in sorted({0.0} | in_ratios.get(path, set())):
                key = weight_key(path, lp, in_ratio)
                if key in stats.weights:
                    continue
                weight = module.weight.detach()
                if channel_ratio(lp) > 0 and path in chains:
                    weight = weight[_kept_filters(model, chains[path], channel_ratio(lp))]
                if in_ratio > 0:
                    producer = next(p for p, c in chains.items() if c.consumer == path)
                    keep = _kept_filters(model, chains[producer], in_ratio)
                    weight = weight[:, _consumer_columns(module, keep, model.get_submodule(producer).weight.shape[0])]
                if lp.prune == "lowrank":
                    factors, _, _ = svd_factorize(_with_weight(module, weight), budget=lp.budget, where=path)
                    stats.weights[key] = tuple(_facts(compressed_weight(f.weight, LayerPolicy(weight_bits=lp.weight_bits)))
                                               for f in factors)
                else:
                    stats.weights[key] = _facts(compressed_weight(weight, lp))
    bits = sorted(set(act_bits))
    if bits and calib is not None:
        for path, x in layer_inputs(model, sorted(options), calib).items():
            for b in bits:
                stats.acts[(path, b)] = act_facts(calibrate_act(x, b), x)
    return stats
