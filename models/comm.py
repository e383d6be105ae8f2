"""Data-parallel training across devices: gradient sizes, all-reduce cost, overlap with backward.

* Links: bandwidth and latency of an interconnect (``configs/links/*.yaml``, cited) or given directly.
* Gradient bytes per scheme: ``none`` (fp32, 32 bits per element); ``qsgd:<bits>`` (Alistarh et al.,
  QSGD, NIPS 2017: a sign and a ``bits``-bit level per element plus the fp32 norm, ``n(bits+1) + 32``
  bits: the fixed-length encoding, an upper bound on the paper's Elias-coded size, which is smaller
  when most levels are zero); ``terngrad`` (Wen et al., NIPS 2017: 2 bits per element plus one fp32 scale).
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
from importlib import resources
from typing import Any

from hwsim.errors import ConfigError, UnknownNameError

BUCKET_BYTES = 25 * 2**20                 # torch.nn.parallel.DistributedDataParallel(bucket_cap_mb=25)
# vector-unit operations per gradient element to encode + decode (assumption: scale, compare/round,
# pack; the same again to unpack and accumulate)
ENCODE_OPS = {"none": 0, "qsgd": 6, "terngrad": 5}


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
        if not bits.isdigit() or not 1 <= int(bits) <= 16:
            raise ConfigError(f"grad compression {scheme!r}: write qsgd:<bits> with 1..16 bits, e.g. qsgd:4")
        return kind, int(bits)
    if kind in ("none", "terngrad") and not bits:
        return kind, None
    raise ConfigError(f"grad compression {scheme!r}: expected none, qsgd:<bits> or terngrad")


def gradient_bits(elements: int, scheme: str = "none") -> float:
    """Bits on the wire for one tensor of ``elements`` gradients under ``scheme`` (module docstring)."""
    kind, bits = parse_scheme(scheme)
    n = max(int(elements), 0)
    if n == 0:
        return 0.0
    if kind == "none":
        return 32.0 * n
    if kind == "terngrad":
        return 2.0 * n + 32
    return n * (bits + 1) + 32.0


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
    return {"devices": devices, "link": link.name, "grad_compression": scheme, "algorithm": algorithm,
            "compute_s": compute_s, "communication_total_s": comm_total, "communication_s": exposed,
            "step_s": step_s, "speedup_vs_one_device": devices * compute_s / step_s if step_s > 0 else 0.0,
            "gradient_bytes": sum(gradient_bits(e, scheme) / 8 for _, e in ready), "buckets": len(buckets)}
