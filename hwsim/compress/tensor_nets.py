"""Tensorized linear layers: tensor train (Novikov et al. 2015), tensor ring (Wang et al. 2018) and
block term (Ye et al. 2018, BT-RNN), plus an LSTM/GRU whose input-to-hidden map is any such layer.

Every forward is an explicit chain of reshape/transpose + ``F.linear`` on 2-D operands, so
``torch.export`` lowers each layer to its real sequence of GEMMs (one ``linear`` per core with the core
as its weight). ``closed_form_*`` give the MACs/parameters of exactly that sequence (batch of ``rows``
input vectors).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hwsim.compress import lowrank_math as lm


def _prod(values) -> int:
    return int(math.prod(int(v) for v in values))


def _step(state: torch.Tensor, weight: torch.Tensor, n_in: int, rest: int) -> torch.Tensor:
    """Contract the middle axis of (lead, n_in, rest) with ``weight`` (n_out, n_in) -> (lead, n_out, rest)."""
    x = state.reshape(-1, n_in, rest).transpose(1, 2).reshape(-1, n_in)
    y = F.linear(x, weight)
    return y.reshape(-1, rest, weight.shape[0]).transpose(1, 2)


def _tensorize(weight: torch.Tensor, in_modes, out_modes) -> torch.Tensor:
    """(out, in) matrix -> tensor with modes (i_1*o_1, ..., i_d*o_d)."""
    d = len(in_modes)
    t = weight.detach().double().reshape(*out_modes, *in_modes)
    order = [axis for k in range(d) for axis in (d + k, k)]
    return t.permute(order).reshape([i * o for i, o in zip(in_modes, out_modes)])


def _untensorize(tensor: torch.Tensor, in_modes, out_modes) -> torch.Tensor:
    """Inverse of ``_tensorize``: modes (i_1*o_1, ..., i_d*o_d) -> (out, in) matrix."""
    d = len(in_modes)
    full = tensor.reshape([v for k in range(d) for v in (in_modes[k], out_modes[k])])
    order = [2 * k + 1 for k in range(d)] + [2 * k for k in range(d)]
    return full.permute(order).reshape(_prod(out_modes), _prod(in_modes))


def _check_modes(in_features: int, out_features: int, in_modes, out_modes) -> None:
    if _prod(in_modes) != in_features or _prod(out_modes) != out_features or len(in_modes) != len(out_modes):
        raise ValueError(f"modes {tuple(in_modes)}x{tuple(out_modes)} do not factor a "
                         f"{out_features}x{in_features} weight")


class TTLinear(nn.Module):
    """Linear layer in tensor-train matrix format; core k is stored as a (o_k*r_k, r_{k-1}*i_k) GEMM weight."""

    def __init__(self, in_modes, out_modes, ranks, *, bias: bool = True):
        super().__init__()
        self.in_modes, self.out_modes = tuple(int(v) for v in in_modes), tuple(int(v) for v in out_modes)
        self.ranks = tuple(int(r) for r in ranks)  # length d + 1, r_0 = r_d = 1
        self.in_features, self.out_features = _prod(self.in_modes), _prod(self.out_modes)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(o * r1, r0 * i))
            for i, o, r0, r1 in zip(self.in_modes, self.out_modes, self.ranks[:-1], self.ranks[1:]))
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, in_modes, out_modes, max_rank: int | None = None,
                    eps: float = 0.0) -> "TTLinear":
        """TT-SVD of a dense layer's weight."""
        _check_modes(linear.in_features, linear.out_features, in_modes, out_modes)
        cores = lm.tt_svd(_tensorize(linear.weight, in_modes, out_modes), max_rank=max_rank, eps=eps)
        ranks = [1] + [c.shape[-1] for c in cores]
        layer = cls(in_modes, out_modes, ranks, bias=linear.bias is not None)
        layer.load_cores(cores)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer

    def load_cores(self, cores: list[torch.Tensor]) -> None:
        """Set the weights from cores of shape (r_{k-1}, i_k*o_k, r_k) (i major)."""
        for w, core, i, o in zip(self.weights, cores, self.in_modes, self.out_modes):
            r0, _, r1 = core.shape
            w.data.copy_(core.reshape(r0, i, o, r1).permute(2, 3, 0, 1).reshape(o * r1, r0 * i))

    def cores(self) -> list[torch.Tensor]:
        """Cores as (r_{k-1}, i_k*o_k, r_k) tensors."""
        out = []
        for w, i, o, r0, r1 in zip(self.weights, self.in_modes, self.out_modes, self.ranks[:-1], self.ranks[1:]):
            out.append(w.detach().reshape(o, r1, r0, i).permute(2, 3, 0, 1).reshape(r0, i * o, r1))
        return out

    def to_dense(self) -> torch.Tensor:
        """The (out, in) matrix this layer applies."""
        full = lm.ring_reconstruct([c.double() for c in self.cores()])
        return _untensorize(full, self.in_modes, self.out_modes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead_shape = x.shape[:-1]
        state, rest = x.reshape(-1, self.in_features), self.in_features
        for w, i in zip(self.weights, self.in_modes):
            rest //= i
            state = _step(state, w, w.shape[1], rest)
        out = state.reshape(*lead_shape, self.out_features)
        return out + self.bias if self.bias is not None else out


class TRLinear(TTLinear):
    """Linear layer in tensor-ring format (r_0 = r_d = ring rank); the last GEMM closes the ring."""

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, in_modes, out_modes, max_rank: int | None = None,
                    eps: float = 0.0, ring_rank: int | None = None) -> "TRLinear":
        """TR-SVD of a dense layer's weight (all ranks <= ``max_rank``)."""
        _check_modes(linear.in_features, linear.out_features, in_modes, out_modes)
        if len(in_modes) < 2:
            raise ValueError("a tensor-ring layer needs at least two modes")
        cores = lm.tr_svd(_tensorize(linear.weight, in_modes, out_modes), rank=int(max_rank or 8),
                          ring_rank=ring_rank)
        ranks = [cores[0].shape[0]] + [c.shape[-1] for c in cores]
        layer = cls(in_modes, out_modes, ranks, bias=linear.bias is not None)
        layer.load_cores(cores)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer

    def __init__(self, in_modes, out_modes, ranks, *, bias: bool = True):
        super().__init__(in_modes, out_modes, ranks, bias=bias)
        r0, d = self.ranks[0], len(self.in_modes)
        # first core: (o_1*r_0*r_1, i_1); last core: (o_d, r_0*r_{d-1}*i_d); middle cores as in TT
        self.weights[0] = nn.Parameter(torch.zeros(self.out_modes[0] * r0 * self.ranks[1], self.in_modes[0]))
        self.weights[d - 1] = nn.Parameter(torch.zeros(self.out_modes[-1], r0 * self.ranks[d - 1] * self.in_modes[-1]))

    def _layouts(self):
        d = len(self.in_modes)
        for k, (w, i, o) in enumerate(zip(self.weights, self.in_modes, self.out_modes)):
            ra, rb = self.ranks[k], self.ranks[k + 1]
            if k == 0:   # core (r0, i, o, r1) -> rows (o, r0, r1), cols (i)
                yield w, (o, ra, rb, i), (1, 3, 0, 2), (2, 0, 3, 1)
            elif k == d - 1:  # core (r_{d-1}, i, o, r0) -> rows (o), cols (r0, r_{d-1}, i)
                yield w, (o, rb, ra, i), (2, 3, 0, 1), (2, 3, 0, 1)
            else:
                yield w, (o, rb, ra, i), (2, 3, 0, 1), (2, 3, 0, 1)

    def load_cores(self, cores: list[torch.Tensor]) -> None:
        for (w, shape, _, to_w), core, i, o in zip(self._layouts(), cores, self.in_modes, self.out_modes):
            core4 = core.reshape(core.shape[0], i, o, core.shape[-1])      # (ra, i, o, rb)
            w.data.copy_(core4.permute(to_w).reshape(w.shape))

    def cores(self) -> list[torch.Tensor]:
        out = []
        for (w, shape, to_core, _), i, o in zip(self._layouts(), self.in_modes, self.out_modes):
            core4 = w.detach().reshape(shape).permute(to_core)
            out.append(core4.reshape(core4.shape[0], i * o, core4.shape[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead_shape, d, r0 = x.shape[:-1], len(self.in_modes), self.ranks[0]
        rest = self.in_features // self.in_modes[0]
        state = _step(x.reshape(-1, self.in_features), self.weights[0], self.in_modes[0], rest)
        for k in range(1, d - 1):             # rows now carry (B, o_1, r_0, o_2, ..., o_{k-1})
            rest //= self.in_modes[k]
            state = _step(state, self.weights[k], self.ranks[k] * self.in_modes[k], rest)
        middle = _prod(self.out_modes[1:-1])
        closing = self.ranks[d - 1] * self.in_modes[-1]
        state = state.reshape(-1, r0, middle, closing).transpose(1, 2).reshape(-1, r0 * closing)
        out = F.linear(state, self.weights[d - 1]).reshape(*lead_shape, self.out_features)
        return out + self.bias if self.bias is not None else out


class BTLinear(nn.Module):
    """Block-term (sum of Tucker blocks) linear layer of BT-RNN: per block, one GEMM per mode then the core."""

    def __init__(self, in_modes, out_modes, block_ranks, n_blocks: int, *, bias: bool = True):
        super().__init__()
        self.in_modes, self.out_modes = tuple(int(v) for v in in_modes), tuple(int(v) for v in out_modes)
        self.block_ranks, self.n_blocks = tuple(int(r) for r in block_ranks), int(n_blocks)
        self.in_features, self.out_features = _prod(self.in_modes), _prod(self.out_modes)
        self.factors = nn.ParameterList(
            nn.Parameter(torch.zeros(o * r, i))
            for _ in range(self.n_blocks) for i, o, r in zip(self.in_modes, self.out_modes, self.block_ranks))
        self.cores = nn.ParameterList(nn.Parameter(torch.zeros(1, _prod(self.block_ranks)))
                                      for _ in range(self.n_blocks))
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, in_modes, out_modes, block_ranks, n_blocks: int = 1,
                    hooi_iters: int = 2) -> "BTLinear":
        """Greedy block-term fit (HOSVD per block on the residual) of a dense weight."""
        _check_modes(linear.in_features, linear.out_features, in_modes, out_modes)
        d = len(in_modes)
        tensor = _tensorize(linear.weight, in_modes, out_modes)
        ranks = tuple(min(int(r), tensor.shape[k]) for k, r in enumerate(block_ranks))
        blocks = lm.block_terms(tensor, tuple(range(d)), ranks, n_blocks, hooi_iters=hooi_iters)
        layer = cls(in_modes, out_modes, ranks, n_blocks, bias=linear.bias is not None)
        for b, (core, factors) in enumerate(blocks):
            layer.cores[b].data.copy_(core.reshape(1, -1))
            for k, (u, i, o, r) in enumerate(zip(factors, in_modes, out_modes, ranks)):
                layer.factors[b * d + k].data.copy_(u.reshape(i, o, r).permute(1, 2, 0).reshape(o * r, i))
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer

    def to_dense(self) -> torch.Tensor:
        """The (out, in) matrix this layer applies."""
        d, total = len(self.in_modes), 0
        for b in range(self.n_blocks):
            factors = [self.factors[b * d + k].detach().double().reshape(o, r, i).permute(2, 0, 1).reshape(i * o, r)
                       for k, (i, o, r) in enumerate(zip(self.in_modes, self.out_modes, self.block_ranks))]
            core = self.cores[b].detach().double().reshape(self.block_ranks)
            total = total + lm.tucker_reconstruct(core, factors, tuple(range(d)))
        return _untensorize(total, self.in_modes, self.out_modes)

    def _block(self, x: torch.Tensor, b: int) -> torch.Tensor:
        d = len(self.in_modes)
        state, rest = x, self.in_features
        for k, i in enumerate(self.in_modes):
            rest //= i
            state = _step(state, self.factors[b * d + k], i, rest)   # rows gain (o_k, R_k)
        interleaved = state.reshape(-1, *[v for pair in zip(self.out_modes, self.block_ranks) for v in pair])
        order = [0] + [1 + 2 * k for k in range(d)] + [2 + 2 * k for k in range(d)]
        grouped = interleaved.permute(order).reshape(-1, _prod(self.block_ranks))
        return F.linear(grouped, self.cores[b]).reshape(-1, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead_shape = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        out = self._block(flat, 0)
        for b in range(1, self.n_blocks):
            out = out + self._block(flat, b)
        out = out.reshape(*lead_shape, self.out_features)
        return out + self.bias if self.bias is not None else out


class FactorizedRNN(nn.Module):
    """Single-layer LSTM/GRU (PyTorch gate order) whose input-to-hidden map is any module (BT/TT/TR linear)."""

    def __init__(self, kind: str, input_proj: nn.Module, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None,
                 *, hidden_size: int, batch_first: bool):
        super().__init__()
        if kind not in ("lstm", "gru"):
            raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}")
        self.kind, self.hidden_size, self.batch_first = kind, int(hidden_size), bool(batch_first)
        self.input_proj = input_proj
        self.hidden = nn.Linear(hidden_size, weight_hh.shape[0], bias=bias_hh is not None)
        self.hidden.weight.data.copy_(weight_hh.detach())
        if bias_hh is not None:
            self.hidden.bias.data.copy_(bias_hh.detach())

    def forward(self, x: torch.Tensor, state=None):
        if state is not None:
            raise ValueError("FactorizedRNN starts from a zero state")
        seq = x if self.batch_first else x.transpose(0, 1)          # (B, T, I)
        batch, steps = seq.shape[0], seq.shape[1]
        proj = self.input_proj(seq.reshape(batch * steps, -1)).reshape(batch, steps, -1)
        h = c = None                      # zero state, never materialized (no zeros op in the exported graph)
        outputs = []
        for t in range(steps):
            gates_h = self.hidden(h) if h is not None else (self.hidden.bias if self.hidden.bias is not None else 0)
            if self.kind == "lstm":
                i, f, g, o = (proj[:, t] + gates_h).chunk(4, dim=1)
                c = torch.sigmoid(i) * torch.tanh(g) + (torch.sigmoid(f) * c if c is not None else 0)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                xr, xz, xn = proj[:, t].chunk(3, dim=1)
                hr, hz, hn = gates_h.chunk(3, dim=-1) if torch.is_tensor(gates_h) else (0, 0, 0)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h = (1 - z) * torch.tanh(xn + r * hn) + (z * h if h is not None else 0)
            outputs.append(h)
        out = torch.stack(outputs, dim=1)
        out = out if self.batch_first else out.transpose(0, 1)
        final = (h.unsqueeze(0), c.unsqueeze(0)) if self.kind == "lstm" else h.unsqueeze(0)
        return out, final


class StackedRNN(nn.Module):
    """Multi-layer LSTM/GRU as a stack of ``FactorizedRNN`` layers (``nn.LSTM`` return convention)."""

    def __init__(self, layers: list[FactorizedRNN]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, state=None):
        if state is not None:
            raise ValueError("StackedRNN starts from a zero state")
        finals = []
        for layer in self.layers:
            x, final = layer(x)
            finals.append(final)
        if self.layers[0].kind == "lstm":
            return x, (torch.cat([h for h, _ in finals]), torch.cat([c for _, c in finals]))
        return x, torch.cat(finals)


# ----- closed forms (MACs for ``rows`` input vectors; parameters incl. bias) ---------------------------

def closed_form_tt_macs(in_modes, out_modes, ranks, *, rows: int = 1) -> int:
    """sum_k rows * prod(o_<k) * prod(i_>k) * r_{k-1} i_k o_k r_k (Novikov et al. 2015, sec. 4)."""
    d = len(in_modes)
    return sum(rows * _prod(out_modes[:k]) * _prod(in_modes[k + 1:]) * ranks[k] * in_modes[k]
               * out_modes[k] * ranks[k + 1] for k in range(d))


def closed_form_tt_params(in_modes, out_modes, ranks, *, bias: bool = True) -> int:
    """sum_k r_{k-1} i_k o_k r_k (+ out bias)."""
    cores = sum(ranks[k] * in_modes[k] * out_modes[k] * ranks[k + 1] for k in range(len(in_modes)))
    return cores + (_prod(out_modes) if bias else 0)


def closed_form_tr_macs(in_modes, out_modes, ranks, *, rows: int = 1) -> int:
    """TT sequence with the ring rank r_0 carried in the rows after core 1 and contracted by the last core."""
    d, r0 = len(in_modes), ranks[0]
    total = rows * _prod(in_modes[1:]) * in_modes[0] * out_modes[0] * r0 * ranks[1]
    for k in range(1, d - 1):
        total += (rows * r0 * _prod(out_modes[:k]) * _prod(in_modes[k + 1:]) * ranks[k] * in_modes[k]
                  * out_modes[k] * ranks[k + 1])
    return total + rows * _prod(out_modes[:-1]) * r0 * ranks[d - 1] * in_modes[-1] * out_modes[-1]


def closed_form_bt_macs(in_modes, out_modes, block_ranks, n_blocks: int, *, rows: int = 1) -> int:
    """Per block: mode-k GEMMs rows * prod(o_<k R_<k) * prod(i_>k) * i_k o_k R_k, then the core prod(o) prod(R)."""
    d = len(in_modes)
    per_block = sum(rows * _prod(out_modes[:k]) * _prod(block_ranks[:k]) * _prod(in_modes[k + 1:])
                    * in_modes[k] * out_modes[k] * block_ranks[k] for k in range(d))
    per_block += rows * _prod(out_modes) * _prod(block_ranks)
    return n_blocks * per_block


def closed_form_bt_params(in_modes, out_modes, block_ranks, n_blocks: int, *, bias: bool = True) -> int:
    """N * (sum_k i_k o_k R_k + prod R_k) (+ out bias) (Ye et al. 2018, eq. 9)."""
    per_block = sum(i * o * r for i, o, r in zip(in_modes, out_modes, block_ranks)) + _prod(block_ranks)
    return n_blocks * per_block + (_prod(out_modes) if bias else 0)
