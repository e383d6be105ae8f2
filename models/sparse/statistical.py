"""Statistical mode: the same dataflows from densities alone (fast, for sweeps).

Density models follow Sparseloop (Wu et al., MICRO 2022): ``uniform`` (fixed-structured: every tile
of n elements holds exactly d*n nonzeros) and ``hypergeometric`` (nnz of a tile of n drawn from a
tensor of N elements with D nonzeros). Load imbalance enters as the expected maximum over the PEs
that synchronize, assuming independent tiles.

``STATED_ERROR`` is each dataflow's largest relative error of compute cycles against the data-driven
model on random masks, as ``tests/test_sparse_engine.py`` measures it over densities, shapes and
seeds; results carry it as the ``statistical_error`` detail.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from hwsim.ir import Layer
from hwsim.models.arch import SparseParams
from hwsim.models.sparse.partition import Work, output_group_k, plane_tiles, skips


STATED_ERROR = {"column_broadcast": 0.20, "cartesian": 0.15, "row_parallel": 0.05}


def _hypergeom_pmf_unnormalized(x: np.ndarray, population: int, successes: int, draws: int) -> np.ndarray:
    """C(D, x) C(N - D, n - x) up to a constant, from log-gamma (scipy's boost pmf is ~100x slower)."""
    from scipy.special import gammaln

    def log_choose(a, b):
        return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)

    log_p = log_choose(successes, x) + log_choose(population - successes, draws - x)
    return np.exp(log_p - log_p.max())


def _ceil_distribution(*, population: int, successes: int, draws: int, lanes: int,
                       model: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, probabilities) of ceil(X / lanes), X = nonzeros among ``draws`` of ``population``."""
    draws = max(0, min(draws, population))
    if population <= 0 or draws == 0:
        return np.zeros(1), np.ones(1)
    if model == "uniform" or successes in (0, population):
        return np.array([float(math.ceil(math.ceil(successes / population * draws - 1e-9) / lanes))]), np.ones(1)
    mean = draws * successes / population
    sd = math.sqrt(max(mean * (1 - successes / population) * (population - draws) / max(population - 1, 1), 0.0))
    # 12 sd plus a fixed margin of 30 keeps all but ~1e-30 of the mass, including the skewed small-mean tails
    # (mean 0.06: X = 4 still carries 1/C(260, 4) = 5e-9) that 12 sd alone would cut.
    lo = max(0, draws - (population - successes), math.floor(mean - 12 * sd - 30))
    hi = min(draws, successes, math.ceil(mean + 12 * sd + 30))
    x = np.arange(lo, hi + 1)
    pmf = _hypergeom_pmf_unnormalized(x, population, successes, draws)
    return np.ceil(x / lanes), pmf / pmf.sum()


def expected_max_ceil(*, population: int, successes: int, draws: int, copies: int, lanes: int,
                      model: str) -> float:
    """E[max over ``copies`` tiles of ceil(X / lanes)], X = nonzeros among ``draws`` of ``population``."""
    values, probs = _ceil_distribution(population=population, successes=successes, draws=draws, lanes=lanes,
                                       model=model)
    if copies < 1 or len(values) == 1:
        return float(values @ probs)
    prob_max = np.diff(np.concatenate(([0.0], np.cumsum(probs) ** copies)))
    return float((values * prob_max).sum())


def ceil_moments(*, population: int, successes: int, draws: int, lanes: int, model: str) -> tuple[float, float]:
    """(E[Y], E[Y^2]) of Y = ceil(X / lanes) (see ``expected_max_ceil``)."""
    values, probs = _ceil_distribution(population=population, successes=successes, draws=draws, lanes=lanes,
                                       model=model)
    return float(values @ probs), float((values ** 2) @ probs)


@lru_cache(maxsize=256)
def expected_max_std_normal(copies: int) -> float:
    """E[max of ``copies`` independent standard normals] (0 for one), by quadrature."""
    if copies <= 1:
        return 0.0
    from scipy.integrate import trapezoid
    from scipy.stats import norm

    x = np.linspace(-10.0, 10.0, 4001)
    density = copies * norm.pdf(x) * norm.cdf(x) ** (copies - 1)
    return float(trapezoid(x * density, x))


def column_broadcast_stat(layer: Layer, sp: SparseParams, nnz: float) -> Work:
    """EIE-style dataflow from densities: windows of ``queue_depth`` activations, slowest PE each."""
    groups, pixels, kred, kn = layer.gemm_shape
    active = round(layer.act_density * kred) if skips(sp.skip, "activations") else kred
    pes = max(1, sp.pes // sp.pixel_parallel)
    domains = min(sp.pixel_parallel, pixels)
    pes_used = min(pes, kn)
    rows_per_pe = math.ceil(kn / pes)
    window = min(sp.queue_depth, max(active, 1))
    population = kn * kred
    successes = int(round(nnz / groups)) if skips(sp.skip, "weights") else population
    per_window = expected_max_ceil(population=population, successes=successes, draws=window * rows_per_pe,
                                   copies=pes_used, lanes=sp.multipliers_per_pe, model=sp.density_model)
    per_pixel = max(float(active), active / window * per_window)
    if sp.intersection_width:   # fiber-metadata scan per activation (see partition.column_broadcast_work)
        per_pixel = max(per_pixel, active * math.ceil(rows_per_pe / sp.intersection_width))
    performed = groups * pixels * active / kred * successes
    return Work(cycles=groups * pixels * per_pixel / domains, performed=performed,
                act_reads=float(groups * pixels * active * pes_used))


def cartesian_stat(layer: Layer, sp: SparseParams, nnz: float) -> Work:
    """SCNN dataflow from densities: largest PE tile, expected ceil(a/I)*ceil(w/F) per channel, plus the
    expected excess of the slowest of the PEs that meet at each output-channel group's barrier."""
    cg, kn, rs = layer.c_per_group, layer.k_per_group, layer.R * layer.S
    kc = output_group_k(layer, sp)
    n_groups = math.ceil(kn / kc)
    plane = int(plane_tiles(layer, sp).max())
    f_width = max(1, sp.multipliers_per_pe // sp.act_lanes)
    act_d = layer.act_density if skips(sp.skip, "activations") else 1.0
    w_succ = int(round(nnz / layer.G)) if skips(sp.skip, "weights") else kn * cg * rs
    planes_total = int(plane_tiles(layer, sp).sum())
    a_mean, a_sq = ceil_moments(population=cg * planes_total, successes=int(round(act_d * cg * planes_total)),
                                draws=plane, lanes=sp.act_lanes, model=sp.density_model)
    w_mean, w_sq = ceil_moments(population=kn * cg * rs, successes=w_succ, draws=kc * rs, lanes=f_width,
                                model=sp.density_model)
    # each output-channel group waits for its slowest PE: a PE's work is a sum over cg channels of
    # ceil(a/I) * ceil(w/F); the weights are shared, so PEs differ by their activations (CLT over channels)
    spread = math.sqrt(max(cg * (a_sq - a_mean ** 2) * w_sq, 0.0))
    pes = len(plane_tiles(layer, sp))
    per_group = cg * a_mean * w_mean + spread * expected_max_std_normal(pes)
    cycles = layer.N * layer.G * n_groups * per_group
    performed = layer.N * layer.G * act_d * cg * planes_total * w_succ / cg
    reads = layer.N * layer.G * act_d * cg * planes_total * n_groups
    return Work(cycles=cycles, performed=performed, act_reads=reads)


def row_parallel_stat(layer: Layer, sp: SparseParams, nnz: float) -> Work:
    """Cambricon-X dataflow from densities: expected longest row of each round."""
    groups, pixels, kred, kn = layer.gemm_shape
    successes = int(round(nnz / groups)) if skips(sp.skip, "weights") else kn * kred
    rounds = math.ceil(kn / sp.pes)
    per_round = expected_max_ceil(population=kn * kred, successes=successes, draws=kred,
                                  copies=min(sp.pes, kn), lanes=sp.multipliers_per_pe, model=sp.density_model)
    performed = float(groups * successes * pixels)
    return Work(cycles=groups * rounds * per_round * pixels, performed=performed, act_reads=performed)
