"""Tensor decompositions behind the low-rank layers: rank choice, EVBMF, HOSVD/HOOI, CP-ALS, TT-SVD, TR-SVD.

Pure functions on ``torch.Tensor`` (computed in float64, returned in float64); no modules are built here.
tensorly is only used when asked for (``cp_decompose(..., solver="tensorly")``) and imported lazily.
"""

from __future__ import annotations

import contextlib
import math
import string

import numpy as np
import torch

from hwsim.errors import ConfigError


# ----- rank selection ------------------------------------------------------------------------

def choose_rank(singular_values: torch.Tensor, *, rank: int | None = None, energy: float | None = None,
                budget: float | None = None, cost_per_rank: float = 1.0, full_cost: float = 1.0,
                where: str = "layer") -> int:
    """Pick a rank from exactly one of: a target ``rank``, an ``energy`` fraction of sum(s^2), or a cost ``budget``.

    ``budget`` is the fraction of ``full_cost`` (parameters or MACs of the dense layer) the factorized layer may
    use; the rank is ``floor(budget * full_cost / cost_per_rank)``. The result is clipped to [1, len(s)].
    """
    given = [name for name, value in (("rank", rank), ("energy", energy), ("budget", budget)) if value is not None]
    if len(given) != 1:
        raise ConfigError(f"{where}: give exactly one of rank, energy, budget (got {given or 'none'})")
    max_rank = int(singular_values.numel())
    if rank is not None:
        if int(rank) < 1:
            raise ConfigError(f"{where}: rank must be >= 1, got {rank}")
        chosen = int(rank)
    elif energy is not None:
        if not 0.0 < float(energy) <= 1.0:
            raise ConfigError(f"{where}: energy must be in (0, 1], got {energy}")
        power = singular_values.double() ** 2
        cumulative = torch.cumsum(power, 0) / power.sum().clamp_min(1e-300)
        chosen = int(torch.searchsorted(cumulative, torch.tensor(float(energy) - 1e-12, dtype=cumulative.dtype))) + 1
    else:
        if not 0.0 < float(budget) <= 1.0:
            raise ConfigError(f"{where}: budget must be in (0, 1], got {budget}")
        chosen = int(math.floor(float(budget) * full_cost / cost_per_rank))
    return max(1, min(chosen, max_rank))


# ----- EVBMF (Nakajima et al., JMLR 2013, "Global analytic solution of fully-observed VB matrix factorization") --

def _evb_tau(x: np.ndarray, alpha: float) -> np.ndarray:
    return 0.5 * (x - (1 + alpha) + np.sqrt((x - (1 + alpha)) ** 2 - 4 * alpha))


def _evb_free_energy(sigma2: float, *, L: int, M: int, s: np.ndarray, residual: float, xubar: float) -> float:
    alpha = L / M
    x = s ** 2 / (M * sigma2)
    big, small = x[x > xubar], x[x <= xubar]
    tau_big = _evb_tau(big, alpha)
    value = np.sum(small - np.log(small)) + np.sum(big - tau_big)
    value += np.sum(np.log((tau_big + 1) / big)) + alpha * np.sum(np.log(tau_big / alpha + 1))
    return float(value + residual / (M * sigma2) + (L - len(s)) * np.log(sigma2))


def evbmf_rank(matrix: torch.Tensor) -> int:
    """Rank kept by empirical variational Bayesian matrix factorization (noise variance estimated).

    Used by Kim et al. (ICLR 2016) to choose Tucker-2 ranks from the mode-0/mode-1 unfoldings.
    """
    from scipy.optimize import minimize_scalar

    y = matrix.detach().double().cpu().numpy()
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    s = np.linalg.svd(y, compute_uv=False)
    alpha = L / M
    tau_bar = 2.5129 * math.sqrt(alpha)          # Nakajima et al. 2013, eq. (34) approximation
    xubar = (1 + tau_bar) * (1 + alpha / tau_bar)
    residual = max(float(np.sum(y ** 2) - np.sum(s ** 2)), 0.0)
    h_upper = int(min(math.ceil(L / (1 + alpha)) - 1, L)) - 1
    h_upper = max(0, min(h_upper, L - 2))
    upper = (np.sum(s ** 2) + residual) / (L * M)
    lower = max(s[h_upper + 1] ** 2 / (M * xubar), np.mean(s[h_upper + 1:] ** 2) / M) if L > 1 else upper * 1e-6
    lower = max(float(lower), upper * 1e-12, 1e-300)
    if lower >= upper:
        return int(L)
    result = minimize_scalar(
        lambda v: _evb_free_energy(v, L=L, M=M, s=s, residual=residual, xubar=xubar),
        bounds=(lower, upper), method="bounded")
    threshold = math.sqrt(M * result.x * (1 + tau_bar) * (1 + alpha / tau_bar))
    return int(np.sum(s > threshold))


# ----- Tucker (HOSVD + HOOI) ------------------------------------------------------------------

def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding: that mode first, the others flattened in order."""
    return torch.movedim(tensor, mode, 0).reshape(tensor.shape[mode], -1)


def mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """``tensor x_mode matrix`` with ``matrix`` of shape (new_dim, tensor.shape[mode])."""
    moved = torch.movedim(tensor, mode, -1)
    return torch.movedim(moved @ matrix.T, -1, mode)


def thin_svd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U, s, Vh`` of a float64 matrix via the eigenvectors of its smaller Gram matrix (up to 2048 wide).

    (3-50x faster than ``torch.linalg.svd`` for conv unfoldings such as 512 x 4608; ``U @ U.T @ X`` stays
    exact at full rank because U is orthonormal.)
    """
    m, n = matrix.shape
    if min(m, n) > 2048:
        return torch.linalg.svd(matrix, full_matrices=False)
    if m > n:
        v, s, uh = thin_svd(matrix.T)
        return uh.T, s, v.T
    evals, evecs = torch.linalg.eigh(matrix @ matrix.T)
    order = torch.argsort(evals, descending=True)
    u, s = evecs[:, order], evals[order].clamp_min(0).sqrt()
    vh = (u.T @ matrix) / s.clamp_min(torch.finfo(matrix.dtype).tiny)[:, None]
    return u, s, vh


def _leading_left(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    u, _, _ = thin_svd(matrix)
    u = u[:, :rank]
    if u.shape[1] < rank:  # pad with zero columns: exact reconstruction, requested layer shape
        u = torch.cat([u, u.new_zeros(u.shape[0], rank - u.shape[1])], dim=1)
    return u


def tucker(tensor: torch.Tensor, modes: tuple[int, ...], ranks: tuple[int, ...], *,
           hooi_iters: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Partial Tucker on ``modes``: returns ``(core, factors)`` with factor ``U_m`` of shape (dim_m, rank_m).

    HOSVD initialisation, then ``hooi_iters`` rounds of higher-order orthogonal iteration.
    """
    x = tensor.detach().double()
    factors = [_leading_left(unfold(x, m), r) for m, r in zip(modes, ranks)]
    for _ in range(hooi_iters):
        for i, (m, r) in enumerate(zip(modes, ranks)):
            partial = x
            for j, (other, u) in enumerate(zip(modes, factors)):
                if j != i:
                    partial = mode_product(partial, u.T, other)
            factors[i] = _leading_left(unfold(partial, m), r)
    core = x
    for m, u in zip(modes, factors):
        core = mode_product(core, u.T, m)
    return core, factors


def tucker_reconstruct(core: torch.Tensor, factors: list[torch.Tensor], modes: tuple[int, ...]) -> torch.Tensor:
    """Inverse of ``tucker``."""
    out = core
    for m, u in zip(modes, factors):
        out = mode_product(out, u, m)
    return out


def block_terms(tensor: torch.Tensor, modes: tuple[int, ...], ranks: tuple[int, ...], n_blocks: int, *,
                hooi_iters: int = 2) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Block-term decomposition as a sum of ``n_blocks`` Tucker terms, fitted greedily on the residual."""
    residual = tensor.detach().double().clone()
    blocks = []
    for _ in range(n_blocks):
        core, factors = tucker(residual, modes, ranks, hooi_iters=hooi_iters)
        residual = residual - tucker_reconstruct(core, factors, modes)
        blocks.append((core, factors))
    return blocks


# ----- CP (Lebedev et al., ICLR 2015) --------------------------------------------------------

def _mttkrp_spec(order: int, mode: int) -> str:
    letters = string.ascii_lowercase[:order]
    others = ",".join(f"{letters[m]}z" for m in range(order) if m != mode)
    return f"{letters},{others}->{letters[mode]}z"


@contextlib.contextmanager
def _one_thread():
    # ALS is thousands of tiny ops: intra-op threads only add spin/sync cost (60x slower on a loaded 2-core box)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cp_als(tensor: torch.Tensor, rank: int, *, n_iter: int = 300, tol: float = 1e-9,
           seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """CP decomposition by alternating least squares: ``tensor ~ sum_r w_r a_r (x) b_r (x) ...``."""
    with _one_thread():
        return _cp_als(tensor, rank, n_iter=n_iter, tol=tol, seed=seed)


def _cp_als(tensor: torch.Tensor, rank: int, *, n_iter: int, tol: float,
            seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = tensor.detach().double()
    order = x.dim()
    gen = torch.Generator().manual_seed(seed)
    factors = []
    for m in range(order):
        u = _leading_left(unfold(x, m), min(rank, x.shape[m]))
        if u.shape[1] < rank:
            u = torch.cat([u, torch.randn(x.shape[m], rank - u.shape[1], generator=gen, dtype=x.dtype)], dim=1)
        factors.append(u)
    norm = x.norm().clamp_min(1e-300)
    previous = math.inf
    for _ in range(n_iter):
        for m in range(order):
            gram = torch.ones(rank, rank, dtype=x.dtype)
            for other in range(order):
                if other != m:
                    gram = gram * (factors[other].T @ factors[other])
            rhs = torch.einsum(_mttkrp_spec(order, m), x, *[factors[o] for o in range(order) if o != m])
            ridge = 1e-12 * float(gram.diagonal().abs().max()) + 1e-300
            factors[m] = torch.linalg.solve(gram + ridge * torch.eye(rank, dtype=x.dtype), rhs.T).T
        error = float((x - cp_reconstruct(torch.ones(rank, dtype=x.dtype), factors)).norm() / norm)
        if abs(previous - error) < tol:
            break
        previous = error
    weights = torch.ones(rank, dtype=x.dtype)
    for m in range(order):
        scale = factors[m].norm(dim=0).clamp_min(1e-300)
        factors[m] = factors[m] / scale
        weights = weights * scale
    return weights, factors


def cp_reconstruct(weights: torch.Tensor, factors: list[torch.Tensor]) -> torch.Tensor:
    """Full tensor from CP weights and factors."""
    letters = string.ascii_lowercase[:len(factors)]
    spec = "z," + ",".join(f"{c}z" for c in letters) + "->" + letters
    return torch.einsum(spec, weights, *factors)


def cp_decompose(tensor: torch.Tensor, rank: int, *, solver: str = "als", n_iter: int = 300,
                 seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """CP by our ALS (``solver="als"``) or tensorly's ``parafac`` (``solver="tensorly"``, optional extra)."""
    if solver == "als":
        return cp_als(tensor, rank, n_iter=n_iter, seed=seed)
    if solver != "tensorly":
        raise ConfigError(f"cp: solver must be 'als' or 'tensorly', got {solver!r}")
    try:
        import tensorly as tl
        from tensorly.decomposition import parafac
    except ImportError:
        raise ConfigError("cp: solver='tensorly' needs tensorly; install the extra: "
                          "pip install 'hwsim[lowrank]'") from None
    cp = parafac(tl.tensor(tensor.detach().double().numpy()), rank=rank, n_iter_max=n_iter, init="svd",
                 random_state=seed, normalize_factors=True)
    weights, factors = cp
    return torch.as_tensor(np.asarray(weights)), [torch.as_tensor(np.asarray(f)) for f in factors]


# ----- tensor train / tensor ring (Oseledets 2011; Zhao et al. 2016 TR-SVD) ---------------------------

def _truncate(s: torch.Tensor, max_rank: int | None, delta: float) -> int:
    tail = torch.flip(torch.cumsum(torch.flip(s ** 2, [0]), 0), [0])  # tail[r] = sum_{j>=r} s_j^2
    keep = int(s.numel())
    for r in range(1, s.numel() + 1):
        if r == s.numel() or float(tail[r]) <= delta ** 2:
            keep = r
            break
    if max_rank is not None:
        keep = min(keep, int(max_rank))
    return max(1, keep)


def tt_svd(tensor: torch.Tensor, *, max_rank: int | None = None, eps: float = 0.0) -> list[torch.Tensor]:
    """TT-SVD: cores of shape (r_{k-1}, n_k, r_k) with r_0 = r_d = 1 and relative error <= eps (if no max_rank)."""
    x = tensor.detach().double()
    dims = list(x.shape)
    delta = eps * float(x.norm()) / math.sqrt(max(len(dims) - 1, 1))
    cores, rank, rest = [], 1, x.reshape(-1)
    for k, n in enumerate(dims[:-1]):
        mat = rest.reshape(rank * n, -1)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        new_rank = _truncate(s, max_rank, delta)
        cores.append(u[:, :new_rank].reshape(rank, n, new_rank))
        rest = s[:new_rank, None] * vh[:new_rank]
        rank = new_rank
    cores.append(rest.reshape(rank, dims[-1], 1))
    return cores


def tr_svd(tensor: torch.Tensor, *, rank: int, ring_rank: int | None = None) -> list[torch.Tensor]:
    """TR-SVD (Zhao et al. 2016): cores (r_{k-1}, n_k, r_k) with r_0 = r_d = ``ring_rank``; ranks <= ``rank``."""
    x = tensor.detach().double()
    dims = list(x.shape)
    r0 = int(ring_rank or rank)
    r1 = int(rank)
    u, s, vh = torch.linalg.svd(x.reshape(dims[0], -1), full_matrices=False)
    keep = min(r0 * r1, s.numel())
    left = torch.zeros(dims[0], r0 * r1, dtype=x.dtype)
    left[:, :keep] = u[:, :keep]
    right = torch.zeros(r0 * r1, vh.shape[1], dtype=x.dtype)
    right[:keep] = s[:keep, None] * vh[:keep]
    cores = [left.reshape(dims[0], r0, r1).permute(1, 0, 2)]
    rest = right.reshape(r0, r1, -1).permute(1, 2, 0)  # (r1, n_2..n_d, r0)
    prev = r1
    for n in dims[1:-1]:
        mat = rest.reshape(prev * n, -1)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        new_rank = min(int(rank), s.numel())
        cores.append(u[:, :new_rank].reshape(prev, n, new_rank))
        rest = s[:new_rank, None] * vh[:new_rank]
        prev = new_rank
    cores.append(rest.reshape(prev, dims[-1], r0))
    return cores


def ring_reconstruct(cores: list[torch.Tensor]) -> torch.Tensor:
    """Full tensor from TT (r_0 = r_d = 1) or TR cores: trace of the product of the core slices."""
    out = cores[0]                      # (r0, n1, r1)
    for core in cores[1:]:
        out = torch.einsum("anr,rmb->anmb", out, core).reshape(out.shape[0], -1, core.shape[-1])
    full = torch.einsum("ana->n", out)
    return full.reshape([c.shape[1] for c in cores])


def factor_dim(n: int, parts: int) -> tuple[int, ...]:
    """Split ``n`` into ``parts`` integer factors as balanced as possible (descending primes, smallest bucket)."""
    primes, rest, p = [], int(n), 2
    while p * p <= rest:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    buckets = [1] * parts
    for prime in sorted(primes, reverse=True):
        buckets[buckets.index(min(buckets))] *= prime
    return tuple(sorted(buckets, reverse=True))
