"""Reconstruction-based channel selection: ThiNet (Luo et al. 2017) and LASSO channel pruning (He et al. 2017).

Both look at the consumer layer's output on a calibration batch. For the consumer's input ``X`` and
weight ``W`` (viewed as ``(K, C, J)`` with ``J = R*S``, or the flattened spatial size for a linear
after a flatten), output ``y[s, k] = sum_c sum_j W[k, c, j] X[s, c, j]``; channel ``c`` contributes
``z_c = sum_j W[k, c, j] X[s, c, j]``. ThiNet greedily removes the channels whose summed contribution
is smallest and rescales the rest by least squares; He et al. pick channels by LASSO on the
per-channel contributions and then re-fit the consumer weights by least squares.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.compress.channel_prune import (_RATIO_PARAMS, Chain, _check_ratio, _consumer_columns, keep_count,
                                          prune_channels)
from hwsim.compress.quantize import layer_inputs
from hwsim.compress.recipe import require_calib
from hwsim.compress.registry import StepReport, register_method

_LASSO_BUDGET = 20_000_000   # max elements of the (samples, K, C) contribution tensor for He et al.
_RIDGE = 1e-6                # relative ridge added to least-squares normal equations


def consumer_input(model: nn.Module, path: str, calib: torch.Tensor) -> torch.Tensor:
    """The input tensor of module ``path`` when ``model`` (eval mode) runs on ``calib``."""
    require_calib(calib, "reconstruction-based channel pruning")
    return layer_inputs(model, [path], calib)[path]


def contribution_samples(consumer: nn.Module, x: torch.Tensor, channels: int, rows: int,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, W)`` shaped ``(S, C, J)`` and ``(K, C, J)`` for up to ``rows`` sampled output positions."""
    if isinstance(consumer, nn.Conv2d):
        cols = F.unfold(x, consumer.kernel_size, dilation=consumer.dilation, padding=consumer.padding,
                        stride=consumer.stride)
        flat = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:
        flat = x.reshape(x.shape[0], -1)
    pick = torch.randperm(flat.shape[0], generator=generator)[:rows]
    samples = flat[pick].double().reshape(len(pick), channels, -1)
    weight = consumer.weight.detach().double().reshape(consumer.weight.shape[0], channels, -1)
    return samples, weight


def _ridge_solve(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmin_w |a w - y|^2 + lam |w|^2 with a tiny relative lam; dual form when rows < columns."""
    lam = _RIDGE * float((a * a).sum()) / max(a.shape[1], 1) + 1e-30
    if a.shape[0] < a.shape[1]:
        kernel = a @ a.T + lam * torch.eye(a.shape[0], dtype=a.dtype)
        return a.T @ torch.linalg.solve(kernel, y)
    return torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=a.dtype), a.T @ y)


def _scaled_consumer(consumer: nn.Module, keep: torch.Tensor, channels: int, scale: torch.Tensor) -> torch.Tensor:
    weight = consumer.weight.detach()[:, _consumer_columns(consumer, keep, channels)]
    shaped = weight.reshape(weight.shape[0], len(keep), -1) * scale.to(weight.dtype)[None, :, None]
    return shaped.reshape(weight.shape)


def _thinet_select(model: nn.Module, chain: Chain, *, ratio: float, multiple: int, calib: torch.Tensor,
                   samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    consumer = model.get_submodule(chain.consumer)
    channels = model.get_submodule(chain.producer).weight.shape[0]
    x, weight = contribution_samples(consumer, consumer_input(model, chain.consumer, calib), channels,
                                     samples, generator)
    out_pick = torch.randint(weight.shape[0], (x.shape[0],), generator=generator)   # one random k per sample
    z = torch.einsum("scj,scj->sc", x, weight[out_pick])
    removed = torch.zeros(channels, dtype=torch.bool)
    running = torch.zeros(z.shape[0], dtype=z.dtype)
    for _ in range(channels - keep_count(channels, ratio, multiple)):
        cost = (running[:, None] + z).pow(2).sum(dim=0)
        cost[removed] = float("inf")
        best = int(torch.argmin(cost))
        removed[best] = True
        running += z[:, best]
    keep = torch.nonzero(~removed).flatten()
    scale = _ridge_solve(z[:, keep], z.sum(dim=1))            # ThiNet eq. 7: least-squares channel scaling
    return keep, _scaled_consumer(consumer, keep, channels, scale)


def _top_eigenvalue(gram: torch.Tensor, iters: int = 50) -> float:
    vec = torch.ones(len(gram), dtype=gram.dtype) / len(gram) ** 0.5
    for _ in range(iters):
        vec = gram @ vec
        vec = vec / vec.norm().clamp_min(1e-30)
    return float(vec @ gram @ vec) * 1.05 + 1e-30     # power iteration, 5 % margin keeps FISTA stable


def _lasso_gram(gram: torch.Tensor, target: torch.Tensor, penalty: float, step: float,
                iters: int = 200) -> torch.Tensor:
    """argmin_b 0.5 b'Gb - t'b + penalty*|b|_1 by FISTA (accelerated proximal gradient), step 1/L."""
    beta = torch.ones_like(target)
    momentum, t_prev = beta.clone(), 1.0
    for _ in range(iters):
        grad = gram @ momentum - target
        new = torch.sign(momentum - step * grad) * (momentum - step * grad).abs().sub(step * penalty).clamp_min(0)
        t_next = (1 + (1 + 4 * t_prev * t_prev) ** 0.5) / 2
        momentum = new + (t_prev - 1) / t_next * (new - beta)
        beta, t_prev = new, t_next
    return beta


def lasso_channels(gram: torch.Tensor, target: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of ``count`` channels chosen by bisecting the LASSO penalty until <= count stay nonzero."""
    low, high = 0.0, float(target.abs().max()) * 1.01
    sparse_beta = torch.zeros_like(target)
    dense_beta = torch.ones_like(target)
    step = 1.0 / _top_eigenvalue(gram)
    for _ in range(20):
        mid = 0.5 * (low + high)
        beta = _lasso_gram(gram, target, mid, step)
        if int((beta.abs() > 1e-10).sum()) > count:
            low, dense_beta = mid, beta
        else:
            high, sparse_beta = mid, beta
    score = sparse_beta.abs() + 1e-9 * dense_beta.abs() / dense_beta.abs().max().clamp_min(1e-30)
    return torch.topk(score, count).indices


def _he_select(model: nn.Module, chain: Chain, *, ratio: float, multiple: int, calib: torch.Tensor,
               samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    consumer = model.get_submodule(chain.consumer)
    channels = model.get_submodule(chain.producer).weight.shape[0]
    x_in = consumer_input(model, chain.consumer, calib)
    x, weight = contribution_samples(consumer, x_in, channels, samples, generator)
    lasso_rows = max(16, min(len(x), _LASSO_BUDGET // (weight.shape[0] * channels)))
    z = torch.einsum("scj,kcj->skc", x[:lasso_rows], weight).reshape(-1, channels)
    keep = lasso_channels(z.T @ z, z.T @ z.sum(dim=1), keep_count(channels, ratio, multiple))
    keep = torch.sort(keep).values
    y = torch.einsum("scj,kcj->sk", x, weight)
    fitted = _ridge_solve(x[:, keep].reshape(len(x), -1), y)            # (C'*J, K) least squares
    columns = _consumer_columns(consumer, keep, channels)
    new_weight = fitted.T.reshape(weight.shape[0], len(keep), -1).to(consumer.weight.dtype)
    return keep, new_weight.reshape(consumer.weight[:, columns].shape)


_RECON_PARAMS = {**_RATIO_PARAMS, "samples": "sampled output positions for selection/least squares (default 4000)"}


@register_method("thinet", paper="Luo et al., ThiNet: A Filter Level Pruning Method for Deep Neural Network "
                 "Compression, ICCV 2017", params=_RECON_PARAMS, family="prune", applies_to=("conv", "linear"),
                 check=_check_ratio)
def thinet(model: nn.Module, modules: list, *, ratio: float = 0.5, multiple: int = 1, samples: int = 4000,
           calib: Any = None, seed: int = 0) -> StepReport:
    """Greedy channel removal minimizing the next layer's reconstruction error, then LS rescaling."""
    return prune_channels(model, modules, "thinet", _thinet_select, ratio=ratio, multiple=multiple,
                          calib=calib, samples=samples, seed=seed)


@register_method("channel_prune_lasso", paper="He et al., Channel Pruning for Accelerating Very Deep Neural "
                 "Networks, ICCV 2017", params=_RECON_PARAMS, family="prune", applies_to=("conv", "linear"),
                 check=_check_ratio)
def channel_prune_lasso(model: nn.Module, modules: list, *, ratio: float = 0.5, multiple: int = 1,
                        samples: int = 4000, calib: Any = None, seed: int = 0) -> StepReport:
    """LASSO channel selection on per-channel contributions, then least-squares consumer reconstruction."""
    return prune_channels(model, modules, "channel_prune_lasso", _he_select, ratio=ratio, multiple=multiple,
                          calib=calib, samples=samples, seed=seed)
