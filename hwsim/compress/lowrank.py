"""Low-rank factorization methods: SVD (linear and conv), CP, Tucker-2, block-term conv, TT/TR/BT linear layers.

Each registered method replaces the selected modules of a model in place with a sequence of smaller
layers (``nn.Sequential`` of convs/linears, or a tensorized layer from ``tensor_nets``) and tags every new
module with ``hwsim_meta["compression"]`` so the lowering records provenance.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hwsim.compress import lowrank_math as lm
from hwsim.compress.registry import LayerChange, StepReport, register_method
from hwsim.compress.tensor_nets import BTLinear, FactorizedRNN, StackedRNN, TRLinear, TTLinear
from hwsim.errors import ConfigError

# ----- shared helpers -------------------------------------------------------------------------------------


def set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` (setattr on its parent)."""
    if not path:
        raise ConfigError("cannot replace the root module in place; select a submodule")
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def tag(module: nn.Module, label: str, *, inherit: nn.Module | None = None) -> nn.Module:
    """Append ``label`` to ``module.hwsim_meta["compression"]`` (after the labels of ``inherit``)."""
    old = list(getattr(inherit, "hwsim_meta", {}).get("compression", [])) if inherit is not None else []
    meta = dict(getattr(module, "hwsim_meta", {}) or {})
    meta["compression"] = old + [c for c in meta.get("compression", []) if c not in old] + [label]
    module.hwsim_meta = meta
    return module


def tag_all(new: nn.Module, label: str, original: nn.Module) -> nn.Module:
    """Tag ``new`` and every submodule of it."""
    for sub in new.modules():
        tag(sub, label, inherit=original)
    return new


def n_params(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def _rel_error(dense: torch.Tensor, approx: torch.Tensor) -> float:
    dense = dense.detach().double()
    return float((dense - approx.detach().reshape(dense.shape)).norm() / dense.norm().clamp_min(1e-300))


def _conv(cin: int, cout: int, kernel, weight: torch.Tensor, like: nn.Conv2d, *, stride=1, padding=0,
          dilation=1, groups: int = 1, bias: torch.Tensor | None = None) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=bias is not None).to(device=like.weight.device, dtype=like.weight.dtype)
    conv.weight.data.copy_(weight.reshape(conv.weight.shape))
    if bias is not None:
        conv.bias.data.copy_(bias.detach())
    return conv


def _check_conv(conv: nn.Module, method: str, path: str) -> str | None:
    if not isinstance(conv, nn.Conv2d):
        return f"skipped: {method} applies to Conv2d, got {type(conv).__name__}"
    if conv.groups != 1:
        return f"skipped: {method} needs an ungrouped conv (groups={conv.groups})"
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return f"skipped: {method} needs numeric zero padding"
    return None


def _apply(method: str, modules, fn) -> StepReport:
    """Run ``fn(path, module) -> (LayerChange, rel_error | None)`` over modules; aggregate into a report."""
    changes, errors = [], []
    for path, module in modules:
        change, error = fn(path, module)
        changes.append(change)
        if error is not None:
            errors.append(error)
    metrics = (("layers_factorized", float(len(errors))),)
    if errors:
        metrics += (("mean_rel_error", sum(errors) / len(errors)), ("max_rel_error", max(errors)))
    return StepReport(method=method, changes=tuple(changes), metrics=metrics)


def _change(path: str, label: str, before: int, after: int, error: float, **extra) -> LayerChange:
    values = (("params_before", before), ("params_after", after), ("rel_error", error)) + tuple(extra.items())
    return LayerChange(module=path, change=label, values=values)


# ----- closed forms of the factorized convs (parameters incl. bias, MACs for one image) -------------------


def _out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def closed_form_conv(kind: str, *, K: int, C: int, R: int, S: int, in_hw: tuple[int, int], rank=None,
                     stride=(1, 1), padding=(0, 0), dilation=(1, 1), n_blocks: int = 1,
                     bias: bool = True) -> tuple[int, int]:
    """(params, MACs) of a conv factorized by ``kind`` in svd | cp | tucker2 | btd (rank: int or (rK, rC))."""
    H, W = in_hw
    P, Q = (_out(H, R, stride[0], padding[0], dilation[0]), _out(W, S, stride[1], padding[1], dilation[1]))
    b = K if bias else 0
    if kind == "svd":
        return rank * C * R * S + K * rank + b, P * Q * (rank * C * R * S + K * rank)
    if kind == "cp":
        params = rank * (C + R + S + K) + b
        return params, H * W * C * rank + P * W * rank * R + P * Q * rank * S + P * Q * rank * K
    if kind in ("tucker2", "btd"):
        r_k, r_c = (rank, rank) if isinstance(rank, int) else rank
        n = n_blocks if kind == "btd" else 1
        params = n * (C * r_c + r_k * r_c * R * S + r_k * K) + b
        return params, H * W * C * n * r_c + P * Q * n * (r_k * r_c * R * S + r_k * K)
    raise ValueError(f"unknown factorization kind {kind!r}")


# ----- SVD (Zhang et al., TPAMI 2016) -----------------------------------------------------------------


def svd_factorize(module: nn.Module, *, rank: int | None = None, energy: float | None = None,
                  budget: float | None = None, where: str = "layer") -> tuple[nn.Sequential, int, float]:
    """Linear -> Linear(r) -> Linear, or conv RxS -> conv RxS with r filters -> 1x1. Returns (new, r, rel_error)."""
    w = module.weight.detach().double()
    mat = w.reshape(w.shape[0], -1)
    u, s, vh = lm.thin_svd(mat)
    r = lm.choose_rank(s, rank=rank, energy=energy, budget=budget, cost_per_rank=sum(mat.shape),
                       full_cost=mat.numel(), where=where)
    root = s[:r].sqrt()
    first, second = root[:, None] * vh[:r], u[:, :r] * root
    bias = module.bias
    if isinstance(module, nn.Linear):
        a = nn.Linear(mat.shape[1], r, bias=False).to(module.weight)
        b = nn.Linear(r, mat.shape[0], bias=bias is not None).to(module.weight)
        a.weight.data.copy_(first)
        b.weight.data.copy_(second)
        if bias is not None:
            b.bias.data.copy_(bias.detach())
    else:
        a = _conv(module.in_channels, r, module.kernel_size, first, module, stride=module.stride,
                  padding=module.padding, dilation=module.dilation)
        b = _conv(r, module.out_channels, 1, second, module, bias=bias)
    return nn.Sequential(a, b), r, _rel_error(w, second @ first)


@register_method("svd", family="lowrank",
                 paper="Zhang et al., Accelerating Very Deep Convolutional Networks for Classification "
                 "and Detection, IEEE TPAMI 2016 (SVD of FC layers: Denton et al. 2014)",
                 params={"rank": "target rank (int)", "energy": "keep this fraction of sum(s^2) (0-1]",
                         "budget": "fraction of the layer's params/MACs to keep (0-1]"})
def svd_method(model: nn.Module, modules, *, rank: int | None = None, energy: float | None = None,
               budget: float | None = None) -> StepReport:
    """Truncated SVD of linear layers and of ungrouped convs (RxS conv with r filters + 1x1 conv)."""

    def one(path, module):
        if isinstance(module, nn.Conv2d) and (reason := _check_conv(module, "svd", path)):
            return LayerChange(path, reason), None
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            return LayerChange(path, f"skipped: svd applies to Linear/Conv2d, got {type(module).__name__}"), None
        new, r, err = svd_factorize(module, rank=rank, energy=energy, budget=budget, where=f"svd: {path}")
        label = f"svd(r={r})"
        set_submodule(model, path, tag_all(new, label, module))
        return _change(path, label, n_params(module), n_params(new), err, rank=r), err

    return _apply("svd", modules, one)


# ----- CP (Lebedev et al., ICLR 2015) -------------------------------------------------------------------


def cp_factorize(conv: nn.Conv2d, rank: int, *, solver: str = "als", n_iter: int = 300,
                 seed: int = 0) -> tuple[nn.Sequential, float]:
    """RxS conv -> 1x1 (C->r) -> Rx1 depthwise -> 1xS depthwise -> 1x1 (r->K)."""
    w = conv.weight.detach().double()
    weights, (a_k, a_c, a_r, a_s) = lm.cp_decompose(w, rank, solver=solver, n_iter=n_iter, seed=seed)
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    R, S = conv.kernel_size
    seq = nn.Sequential(
        _conv(conv.in_channels, rank, 1, a_c.T, conv),
        _conv(rank, rank, (R, 1), a_r.T, conv, stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), groups=rank),
        _conv(rank, rank, (1, S), a_s.T, conv, stride=(1, sw), padding=(0, pw), dilation=(1, dw), groups=rank),
        _conv(rank, conv.out_channels, 1, a_k * weights, conv, bias=conv.bias))
    return seq, _rel_error(w, lm.cp_reconstruct(weights, [a_k, a_c, a_r, a_s]))


@register_method("cp", family="lowrank",
                 paper="Lebedev et al., Speeding-up Convolutional Neural Networks Using Fine-tuned "
                 "CP-Decomposition, ICLR 2015", applies_to=("conv",),
                 params={"rank": "CP rank (int)", "budget": "fraction of the conv's params to keep (0-1]",
                         "solver": "als (built in, default) | tensorly (parafac; extra [lowrank])",
                         "n_iter": "ALS iterations (default 300)", "seed": "init seed (default 0)"})
def cp_method(model: nn.Module, modules, *, rank: int | None = None, budget: float | None = None,
              solver: str = "als", n_iter: int = 300, seed: int = 0) -> StepReport:
    """CP decomposition of ungrouped convs into four separable convs."""

    def one(path, module):
        if reason := _check_conv(module, "cp", path):
            return LayerChange(path, reason), None
        K, C, R, S = module.weight.shape
        r = lm.choose_rank(torch.ones(K * C * R * S), rank=rank, budget=budget, cost_per_rank=K + C + R + S,
                           full_cost=K * C * R * S, where=f"cp: {path}")
        new, err = cp_factorize(module, r, solver=solver, n_iter=n_iter, seed=seed)
        label = f"cp(r={r})"
        set_submodule(model, path, tag_all(new, label, module))
        return _change(path, label, n_params(module), n_params(new), err, rank=r), err

    return _apply("cp", modules, one)


# ----- Tucker-2 (Kim et al., ICLR 2016) and block-term conv (Wang & Cheng, ACM MM 2016) -----------------


def tucker_stack(conv: nn.Conv2d, blocks: list[tuple[torch.Tensor, list[torch.Tensor]]]) -> nn.Sequential:
    """Sum of Tucker-2 blocks as 1x1 (C -> N*rC) -> grouped RxS (N groups) -> 1x1 (N*rK -> K)."""
    n = len(blocks)
    cores = torch.cat([core for core, _ in blocks], dim=0)                  # (N*rK, rC, R, S)
    u_k = torch.cat([factors[0] for _, factors in blocks], dim=1)          # (K, N*rK)
    u_c = torch.cat([factors[1] for _, factors in blocks], dim=1)          # (C, N*rC)
    return nn.Sequential(
        _conv(conv.in_channels, u_c.shape[1], 1, u_c.T, conv),
        _conv(u_c.shape[1], cores.shape[0], conv.kernel_size, cores, conv, stride=conv.stride,
              padding=conv.padding, dilation=conv.dilation, groups=n),
        _conv(cores.shape[0], conv.out_channels, 1, u_k, conv, bias=conv.bias))


def _ratio_for_budget(K: int, C: int, RS: int, budget: float, n_blocks: int = 1) -> float:
    # params(a) = N * (a*C*C + a^2*K*C*RS + a*K*K) with rK = a*K, rC = a*C; solve params = budget*K*C*RS
    qa, qb, qc = n_blocks * K * C * RS, n_blocks * (C * C + K * K), -budget * K * C * RS
    return (-qb + math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)


def tucker2_ranks(conv: nn.Conv2d, *, ranks=None, budget: float | None = None, n_blocks: int = 1,
                  where: str = "layer") -> tuple[int, int]:
    """(rK, rC) from explicit ``ranks`` (int or pair), a param ``budget``, or else EVBMF on the two unfoldings."""
    w = conv.weight.detach().double()
    K, C, R, S = w.shape
    if ranks is not None and budget is not None:
        raise ConfigError(f"{where}: give ranks or budget, not both")
    if ranks is not None:
        r_k, r_c = (ranks, ranks) if isinstance(ranks, int) else tuple(ranks)
    elif budget is not None:
        if not 0.0 < float(budget) <= 1.0:
            raise ConfigError(f"{where}: budget must be in (0, 1], got {budget}")
        a = _ratio_for_budget(K, C, R * S, float(budget), n_blocks)
        r_k, r_c = int(a * K), int(a * C)
    else:
        r_k, r_c = lm.evbmf_rank(lm.unfold(w, 0)), lm.evbmf_rank(lm.unfold(w, 1))
    return max(1, min(int(r_k), K)), max(1, min(int(r_c), C))


@register_method("tucker2", family="lowrank",
                 paper="Kim et al., Compression of Deep Convolutional Neural Networks for Fast and "
                 "Low Power Mobile Applications, ICLR 2016", applies_to=("conv",),
                 params={"ranks": "int or [r_out, r_in]; default: chosen by EVBMF (Nakajima et al. 2013)",
                         "budget": "fraction of the conv's params to keep (0-1], instead of ranks",
                         "hooi_iters": "HOOI refinement rounds after HOSVD (default 0)"})
def tucker2_method(model: nn.Module, modules, *, ranks=None, budget: float | None = None,
                   hooi_iters: int = 0) -> StepReport:
    """Tucker-2 of ungrouped convs: 1x1 -> RxS core -> 1x1."""

    def one(path, module):
        if reason := _check_conv(module, "tucker2", path):
            return LayerChange(path, reason), None
        r_k, r_c = tucker2_ranks(module, ranks=ranks, budget=budget, where=f"tucker2: {path}")
        w = module.weight.detach().double()
        core, factors = lm.tucker(w, (0, 1), (r_k, r_c), hooi_iters=hooi_iters)
        new = tucker_stack(module, [(core, factors)])
        err = _rel_error(w, lm.tucker_reconstruct(core, factors, (0, 1)))
        label = f"tucker2(r={r_k},{r_c})"
        set_submodule(model, path, tag_all(new, label, module))
        return _change(path, label, n_params(module), n_params(new), err, ranks=(r_k, r_c)), err

    return _apply("tucker2", modules, one)


@register_method("btd", family="lowrank",
                 paper="Wang & Cheng, Accelerating Convolutional Neural Networks for Mobile "
                 "Applications, ACM MM 2016 (block-term decomposition)", applies_to=("conv",),
                 params={"n_blocks": "number of Tucker-2 blocks (default 2)",
                         "ranks": "per-block int or [r_out, r_in]", "budget": "fraction of params (0-1]",
                         "hooi_iters": "HOOI rounds per block (default 2)"})
def btd_method(model: nn.Module, modules, *, n_blocks: int = 2, ranks=None, budget: float | None = None,
               hooi_iters: int = 2) -> StepReport:
    """Block-term decomposition of convs: 1x1 -> grouped RxS (one group per block) -> 1x1."""
    if ranks is None and budget is None:
        raise ConfigError("btd: give ranks or budget")

    def one(path, module):
        if reason := _check_conv(module, "btd", path):
            return LayerChange(path, reason), None
        r_k, r_c = tucker2_ranks(module, ranks=ranks, budget=budget, n_blocks=n_blocks, where=f"btd: {path}")
        w = module.weight.detach().double()
        blocks = lm.block_terms(w, (0, 1), (r_k, r_c), n_blocks, hooi_iters=hooi_iters)
        approx = sum(lm.tucker_reconstruct(core, factors, (0, 1)) for core, factors in blocks)
        new = tucker_stack(module, blocks)
        label = f"btd(n={n_blocks},r={r_k},{r_c})"
        set_submodule(model, path, tag_all(new, label, module))
        return _change(path, label, n_params(module), n_params(new), _rel_error(w, approx)), _rel_error(w, approx)

    return _apply("btd", modules, one)


# ----- tensorized linear layers: TT (Novikov et al. 2015), TR (Wang et al. 2018), BT-RNN (Ye et al. 2018) ---


def _modes(features: int, given, n_modes: int) -> tuple[int, ...]:
    return tuple(int(v) for v in given) if given is not None else lm.factor_dim(features, n_modes)


def _as_linear(module: nn.Module, layer: int = 0) -> nn.Linear:
    if isinstance(module, nn.Linear):
        return module
    weight = getattr(module, f"weight_ih_l{layer}")
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=module.bias).to(weight)
    lin.weight.data.copy_(weight.detach())
    if module.bias:
        lin.bias.data.copy_(getattr(module, f"bias_ih_l{layer}").detach())
    return lin


def _rnn_reason(module: nn.Module, method: str) -> str | None:
    if isinstance(module, nn.Linear):
        return None
    if not isinstance(module, (nn.LSTM, nn.GRU)):
        return f"skipped: {method} applies to Linear/LSTM/GRU, got {type(module).__name__}"
    if module.bidirectional or getattr(module, "proj_size", 0):
        return f"skipped: {method} supports unidirectional LSTM/GRU without projection"
    return None


def _factorized_rnn(module: nn.Module, build) -> tuple[nn.Module, list[nn.Module], float]:
    """Every layer's input-to-hidden matrix by ``build``; returns (new module, tensorized layers, mean error)."""
    kind = "lstm" if isinstance(module, nn.LSTM) else "gru"
    layers, tensorized, errors = [], [], []
    for index in range(module.num_layers):
        linear = _as_linear(module, index)
        proj = build(linear).to(linear.weight)
        errors.append(_rel_error(linear.weight, proj.to_dense()))
        tensorized.append(proj)
        layers.append(FactorizedRNN(kind, proj, getattr(module, f"weight_hh_l{index}"),
                                    getattr(module, f"bias_hh_l{index}", None), hidden_size=module.hidden_size,
                                    batch_first=module.batch_first))
    new = layers[0] if len(layers) == 1 else StackedRNN(layers)
    return new, tensorized, sum(errors) / len(errors)


def _tensorized(method: str, modules, model: nn.Module, build, label_of) -> StepReport:
    """Replace Linear layers (and the input-to-hidden maps of LSTM/GRU) by ``build(linear)``."""

    def one(path, module):
        if reason := _rnn_reason(module, method):
            return LayerChange(path, reason), None
        if isinstance(module, nn.Linear):
            new = build(module).to(module.weight)
            tensorized, err = [new], _rel_error(module.weight, new.to_dense())
        else:
            new, tensorized, err = _factorized_rnn(module, build)
        label = label_of(tensorized[0])
        for sub in new.modules():
            tag(sub, label, inherit=module)
        set_submodule(model, path, new)
        return _change(path, label, n_params(module), n_params(new), err), err

    return _apply(method, modules, one)


@register_method("tt", family="lowrank",
                 paper="Novikov et al., Tensorizing Neural Networks, NIPS 2015 (TT-SVD: Oseledets 2011)",
                 applies_to=("linear",),
                 params={"max_rank": "largest TT rank", "eps": "relative error target of TT-SVD (default 0)",
                         "n_modes": "number of cores d (default 3)", "in_modes": "explicit input factorization",
                         "out_modes": "explicit output factorization"})
def tt_method(model: nn.Module, modules, *, max_rank: int | None = None, eps: float = 0.0, n_modes: int = 3,
              in_modes=None, out_modes=None) -> StepReport:
    """Replace linear layers by tensor-train layers (one GEMM per core)."""

    def build(lin):
        return TTLinear.from_linear(lin, in_modes=_modes(lin.in_features, in_modes, n_modes),
                                    out_modes=_modes(lin.out_features, out_modes, n_modes),
                                    max_rank=max_rank, eps=eps)

    return _tensorized("tt", modules, model, build, lambda layer: f"tt(r={max(layer.ranks)})")


@register_method("tr", family="lowrank",
                 paper="Wang et al., Wide Compression: Tensor Ring Nets, CVPR 2018 (TR-SVD: Zhao et al. "
                 "2016)", applies_to=("linear",),
                 params={"rank": "TR rank of every core (default 8)", "ring_rank": "r_0 = r_d (default rank)",
                         "n_modes": "number of cores d >= 2 (default 3)", "in_modes": "explicit input factorization",
                         "out_modes": "explicit output factorization"})
def tr_method(model: nn.Module, modules, *, rank: int = 8, ring_rank: int | None = None, n_modes: int = 3,
              in_modes=None, out_modes=None) -> StepReport:
    """Replace linear layers by tensor-ring layers (the last GEMM closes the ring)."""

    def build(lin):
        return TRLinear.from_linear(lin, in_modes=_modes(lin.in_features, in_modes, n_modes),
                                    out_modes=_modes(lin.out_features, out_modes, n_modes),
                                    max_rank=rank, ring_rank=ring_rank)

    return _tensorized("tr", modules, model, build, lambda layer: f"tr(r={rank})")


@register_method("bt_rnn", family="lowrank",
                 paper="Ye et al., Learning Compact Recurrent Neural Networks with Block-Term Tensor "
                 "Decomposition, CVPR 2018", applies_to=("linear", "lstm", "gru"),
                 params={"n_blocks": "number of Tucker blocks N (default 2)",
                         "block_rank": "Tucker rank per mode, int or list (default 2)",
                         "n_modes": "tensor order d (default 3)", "in_modes": "explicit input factorization",
                         "out_modes": "explicit output factorization", "hooi_iters": "HOOI rounds (default 2)"})
def bt_rnn_method(model: nn.Module, modules, *, n_blocks: int = 2, block_rank=2, n_modes: int = 3,
                  in_modes=None, out_modes=None, hooi_iters: int = 2) -> StepReport:
    """Block-term layers for linear layers and the input-to-hidden map of single-layer LSTM/GRU."""

    def build(lin):
        i_modes = _modes(lin.in_features, in_modes, n_modes)
        ranks = [block_rank] * len(i_modes) if isinstance(block_rank, int) else list(block_rank)
        return BTLinear.from_linear(lin, in_modes=i_modes, out_modes=_modes(lin.out_features, out_modes, n_modes),
                                    block_ranks=ranks, n_blocks=n_blocks, hooi_iters=hooi_iters)

    return _tensorized("bt_rnn", modules, model, build,
                       lambda layer: f"bt(n={layer.n_blocks},r={max(layer.block_ranks)})")
