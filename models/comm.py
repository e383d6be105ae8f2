"""Data-parallel training across devices: gradient sizes, all-reduce cost, overlap with backward.

* Links: bandwidth and latency of an interconnect (``configs/links/*.yaml``, cited) or given directly.
* Gradient bytes per scheme: ``none`` (fp32, 32 bits per element); ``qsgd:<bits>`` (Alistarh et al.,
  QSGD, NIPS 2017, Sec. 3.2 "Code_s": per bucket the fp32 norm, then for each non-zero level the Elias
  omega code of the gap to the previous non-zero, a sign bit and the Elias code of the level; ``bits``
  sets s = 2^(bits-1) - 1 levels, as ``hwsim.compress.gradients`` does). With no gradient to encode, the
  expected code length is taken for a Gaussian gradient (``qsgd_expected_bits``; an assumption, stated
  in the result); ``gradient_bits(..., coding="fixed")`` gives the fixed-length ``bits`` per element.
  ``terngrad`` (Wen et al., NIPS 2017): 2 bits per element plus one fp32 scale.
* All-reduce (the alpha-beta model, Thakur, Rabenseifner & Gropp 2005): ring ``2(p-1) a + 2 (p-1)/p n b``;
  a parameter server on one link: ``2 a + 2 p n b`` (every worker pushes and pulls ``n`` bytes).
* Overlap as PyTorch DDP does it: gradients are bucketed (25 MB, ``bucket_cap_mb``'s default) in
  reverse layer order; a bucket's all-reduce starts when its last gradient is ready and the previous
  bucket's is done; what finishes after the backward pass is exposed communication.
* Compression compute: encoding and decoding run on the vector unit (``ENCODE_OPS`` per element).
Weak scaling: each device keeps its batch, so the speed-up is ``p x t(1) / t(p)`` in samples per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from hwsim.errors import ConfigError, UnknownNameError

BUCKET_BYTES = 25 * 2**20                 # torch.nn.parallel.DistributedDataParallel(bucket_cap_mb=25)
# vector-unit operations per gradient element to encode + decode (assumption: scale, compare/round,
# pack; the same again to unpack and accumulate)
ENCODE_OPS = {"none": 0, "qsgd": 6, "terngrad": 5}
# QSGD bucket (elements sharing one norm) when the wire size is modelled rather than measured; an
# assumption: small buckets keep QSGD's variance bound (Lemma 3.1, min(d/s^2, sqrt(d)/s)) low
QSGD_BUCKET = 512
FLOAT_BITS = 32   # the QSGD bucket norm and the TernGrad scale travel as fp32


@dataclass(frozen=True)
class Link:
    """An interconnect: bytes per second each way and per-message latency."""

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    source: str = ""


def link_names() -> list[str]:
    folder = resources.files("hwsim.configs") / "links"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_link(name: str | None = None, *, gbps: float | None = None, latency_us: float | None = None) -> Link:
    """A shipped link preset by name, or a custom link from gigabits per second and microseconds."""
    if name is None:
        if gbps is None:
            raise ConfigError("give --link NAME or --link-gbps (and --link-latency-us)")
        if gbps <= 0 or (latency_us is not None and latency_us < 0):
            raise ConfigError(f"link bandwidth must be > 0 and latency >= 0, got {gbps} Gb/s, {latency_us} us")
        return Link(f"{gbps:g}Gbps", gbps * 1e9 / 8, (latency_us or 0.0) * 1e-6, "given on the command line")
    import yaml

    if name not in link_names():
        raise UnknownNameError(f"unknown link {name!r}; links: {', '.join(link_names())}")
    data = yaml.safe_load((resources.files("hwsim.configs") / "links" / f"{name}.yaml").read_text())
    bandwidth = gbps if gbps is not None else data["bandwidth_gbps"]
    latency = latency_us if latency_us is not None else data["latency_us"]
    return Link(name, bandwidth * 1e9 / 8, latency * 1e-6, "; ".join(f"{k}: {v}" for k, v in data["sources"].items()))


def parse_scheme(scheme: str) -> tuple[str, int | None]:
    """``none`` | ``qsgd:<bits>`` | ``terngrad`` -> (kind, bits)."""
    kind, _, bits = scheme.partition(":")
    if kind == "qsgd":
        if not bits.isdigit() or not 2 <= int(bits) <= 16:
            raise ConfigError(f"grad compression {scheme!r}: write qsgd:<bits> with 2..16 bits, e.g. qsgd:4")
        return kind, int(bits)
    if kind in ("none", "terngrad") and not bits:
        return kind, None
    raise ConfigError(f"grad compression {scheme!r}: expected none, qsgd:<bits> or terngrad")


def elias_omega_lengths(values: np.ndarray) -> np.ndarray:
    """Length in bits of the Elias omega code of each positive integer in ``values``."""
    x = np.asarray(values, dtype=np.int64).ravel()
    if x.size and x.min() < 1:
        raise ValueError("Elias omega codes positive integers only")
    bits = np.ones_like(x)                     # the terminating 0
    while np.any(x > 1):
        big = x > 1
        width = np.floor(np.log2(np.where(big, x, 1))).astype(np.int64) + 1
        bits += np.where(big, width, 0)
        x = np.where(big, width - 1, 1)
    return bits


def elias_omega_bits(values: np.ndarray) -> int:
    """Total length in bits of the Elias omega codes of positive integers ``values``."""
    return int(elias_omega_lengths(values).sum())


@lru_cache(maxsize=256)
def _qsgd_level_probabilities(levels: int, bucket: int) -> tuple[float, ...]:
    """P(level = j), j = 0..s, of one coordinate of a Gaussian vector of dimension ``bucket``.

    u = |v_i| / ||v|| has density proportional to (1 - u^2)^((d-3)/2) on [0, 1]; QSGD rounds s*u
    stochastically to its neighbours, so P(j) = E[max(0, 1 - |s u - j|)].
    """
    if bucket <= 1:
        weights, u = np.ones(1), np.ones(1)
    else:
        grid = 400_000
        u = (np.arange(grid) + 0.5) / grid               # midpoints: the d = 2 density is singular at 1
        weights = (1.0 - u * u) ** ((bucket - 3) / 2.0)
        weights /= weights.sum()
    scaled = levels * u
    return tuple(float(np.sum(weights * np.clip(1.0 - np.abs(scaled - j), 0.0, None)))
                 for j in range(levels + 1))


def qsgd_expected_bits(elements: int, bits: int, bucket: int = QSGD_BUCKET) -> float:
    """Expected Elias-coded size (Code_s) of a Gaussian gradient of ``elements`` under ``qsgd:<bits>``."""
    n = int(elements)
    if n <= 0:
        return 0.0
    levels, d = 2 ** (bits - 1) - 1, min(int(bucket), n)
    probs = np.array(_qsgd_level_probabilities(levels, d))
    nonzero = 1.0 - probs[0]
    level_bits = float(np.sum(probs[1:] * elias_omega_lengths(np.arange(1, levels + 1))))
    if nonzero <= 0:
        return math.ceil(n / d) * FLOAT_BITS
    # gaps between non-zero positions are geometric(nonzero), cut at the tensor's length
    horizon = int(min(n, math.ceil(60.0 / nonzero)))
    gaps = np.arange(1, horizon + 1)
    gap_probs = nonzero * (1.0 - nonzero) ** (gaps - 1)
    gap_bits = float(np.sum(gap_probs * elias_omega_lengths(gaps)) / gap_probs.sum())
    return math.ceil(n / d) * FLOAT_BITS + n * (nonzero * (1.0 + gap_bits) + level_bits)


def gradient_bits(elements: int, scheme: str = "none", *, coding: str = "elias",
                  bucket: int = QSGD_BUCKET) -> float:
    """Bits on the wire for one tensor of ``elements`` gradients under ``scheme`` (module docstring).

    ``coding`` applies to QSGD: ``elias`` (the paper's Code_s, expected size) or ``fixed`` (``bits`` per
    element plus one norm per bucket).
    """
    kind, bits = parse_scheme(scheme)
    if coding not in ("elias", "fixed"):
        raise ConfigError(f"QSGD coding must be 'elias' or 'fixed', got {coding!r}")
    n = max(int(elements), 0)
    if n == 0:
        return 0.0
    if kind == "none":
        return 32.0 * n
    if kind == "terngrad":
        return 2.0 * n + FLOAT_BITS
    if coding == "fixed":
        return n * bits + math.ceil(n / min(bucket, n)) * FLOAT_BITS
    return qsgd_expected_bits(n, bits, bucket)


def ring_allreduce_s(n_bytes: float, devices: int, link: Link) -> float:
    """Ring all-reduce of ``n_bytes`` over ``devices``: ``2(p-1) a + 2 (p-1)/p n b``."""
    if devices <= 1 or n_bytes <= 0:
        return 0.0
    p = devices
    return 2 * (p - 1) * link.latency_s + 2 * (p - 1) / p * n_bytes / link.bandwidth_bytes_per_s


def parameter_server_s(n_bytes: float, devices: int, link: Link) -> float:
    """One parameter server behind one link: every worker pushes and pulls ``n_bytes``."""
    if devices <= 1 or n_bytes <= 0:
        return 0.0
    return 2 * link.latency_s + 2 * devices * n_bytes / link.bandwidth_bytes_per_s


def data_parallel(result: Any, *, devices: int, link: Link, scheme: str = "none", algorithm: str = "ring",
                  bucket_bytes: int = BUCKET_BYTES, arch: Any = None) -> dict[str, Any]:
    """Step time on ``devices`` of a simulated training step (``simulate(..., training=True)``'s result,
    whose ``meta["gradient_elems"]`` lists each weight gradient's size).

    Returns the compute time, the total and the exposed communication (``communication_s``), the
    step time and the speed-up against one device (weak scaling). ``arch`` prices gradient encoding
    and decoding on its vector unit (free without it).
    """
    if devices < 1:
        raise ConfigError(f"devices must be >= 1, got {devices}")
    if algorithm not in ("ring", "ps"):
        raise ConfigError(f"all-reduce algorithm must be 'ring' or 'ps', got {algorithm!r}")
    kind, _ = parse_scheme(scheme)
    cost = ring_allreduce_s if algorithm == "ring" else parameter_server_s
    compute_s = result.latency_s
    layers = list(result.layers)
    backward_start = sum(layer.latency_s for layer in layers if layer.phase == "forward")
    # gradients become ready as the backward pass reaches each layer's weight gradient
    clock, ready = backward_start, []
    for layer in layers:
        if layer.phase == "forward":
            continue
        clock += layer.latency_s
        if layer.phase == "backward_weight":
            ready.append((clock, int(result.meta["gradient_elems"][layer.name])))
    backward_end = clock
    buckets, current, current_bytes = [], [], 0.0
    for when, elements in ready:
        current.append((when, elements))
        current_bytes += elements * 4
        if current_bytes >= bucket_bytes:
            buckets.append(current)
            current, current_bytes = [], 0.0
    if current:
        buckets.append(current)
    link_free, comm_total = backward_start, 0.0
    if arch is not None:
        from hwsim.models.vector import vector_lanes

        ops_rate = vector_lanes(arch) * arch.clock_hz   # encode/decode on the device's vector unit
    else:
        ops_rate = math.inf
    for bucket in buckets:
        start = max(max(w for w, _ in bucket), link_free)
        elements = sum(e for _, e in bucket)
        wire_bytes = gradient_bits(elements, scheme) / 8
        codec_s = elements * ENCODE_OPS[kind] / ops_rate if devices > 1 else 0.0
        duration = cost(wire_bytes, devices, link) + codec_s
        comm_total += duration
        link_free = start + duration
    exposed = max(0.0, link_free - backward_end) if buckets else 0.0
    step_s = compute_s + exposed
    coding = (f"Elias Code_s, expected for Gaussian gradients in {QSGD_BUCKET}-element buckets (assumption)"
              if kind == "qsgd" else "fp32" if kind == "none" else "2 bits per element + fp32 scale")
    return {"devices": devices, "link": link.name, "grad_compression": scheme, "gradient_coding": coding,
            "algorithm": algorithm,
            "compute_s": compute_s, "communication_total_s": comm_total, "communication_s": exposed,
            "step_s": step_s, "speedup_vs_one_device": devices * compute_s / step_s if step_s > 0 else 0.0,
            "gradient_bytes": sum(gradient_bits(e, scheme) / 8 for _, e in ready), "buckets": len(buckets)}
