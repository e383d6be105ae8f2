"""Differential tests against the real SCALE-Sim 3.0.0 (``pytest -m peers``).

SCALE-Sim needs numpy<2.4, so it lives in its own venv (``benchmarks/setup_scalesim_venv.sh``); point
``HWSIM_SCALESIM_PYTHON`` at that venv's python. Random conv and GEMM layers x arrays (square and not)
x ws/os/is x SRAM sizes that do and do not stall, seeded; every column of the three reports is
compared and the per-column pass rate is printed (``-s``) and recorded in the assertion message.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

from hwsim.interop.scalesim import ScaleSimConfig, read_topology, run_peer, write_reports
from hwsim.models.systolic.buffers import simulate_buffers

PEER = os.environ.get("HWSIM_SCALESIM_PYTHON", "")
pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(not (PEER and Path(PEER).exists()), reason="HWSIM_SCALESIM_PYTHON not set")]
REPORTS = ("COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv")


def random_topology(rng: random.Random, path: Path, *, gemm: bool, count: int = 4) -> Path:
    """A small random topology file (trailing commas, as SCALE-Sim needs)."""
    lines = ["Layer, M, N, K," if gemm else
             "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
    for i in range(count):
        if gemm:
            lines.append(f"g{i}, {rng.randint(1, 40)}, {rng.randint(1, 40)}, {rng.randint(1, 40)},")
        else:
            r, s = rng.randint(1, 3), rng.randint(1, 3)
            name = f"DP{i}" if i == count - 1 else f"c{i}"       # one depthwise row per file
            lines.append(f"{name}, {rng.randint(r, 14)}, {rng.randint(s, 14)}, {r}, {s}, {rng.randint(1, 6)}, "
                         f"{rng.randint(1, 12)}, {rng.randint(1, 2)},")
    path.write_text("\n".join(lines) + "\n")
    return path


# (seed, rows, cols, dataflow, SRAM kB, interface, fill words/cycle, drain words/cycle)
CASES = [
    (1, 4, 4, "ws", 64, "CALC", 10, 10), (2, 8, 4, "os", 64, "CALC", 10, 10), (3, 4, 8, "is", 64, "CALC", 10, 10),
    (4, 1, 1, "ws", 64, "CALC", 10, 10), (5, 8, 8, "ws", 1, "CALC", 10, 10), (6, 4, 4, "os", 1, "CALC", 10, 10),
    (7, 8, 4, "is", 1, "CALC", 10, 10), (8, 16, 8, "ws", 2, "CALC", 10, 10), (9, 3, 5, "os", 1, "CALC", 10, 10),
    (10, 5, 3, "is", 2, "CALC", 10, 10),
    (11, 4, 4, "ws", 64, "USER", 10, 10), (12, 8, 4, "os", 64, "USER", 10, 10), (13, 4, 8, "is", 64, "USER", 10, 10),
    (14, 8, 8, "ws", 1, "USER", 2, 4), (15, 4, 4, "os", 1, "USER", 1, 2), (16, 8, 4, "is", 1, "USER", 2, 2),
    (17, 16, 8, "ws", 2, "USER", 4, 8), (18, 3, 5, "os", 1, "USER", 3, 1), (19, 5, 3, "is", 1, "USER", 1, 1),
    (20, 1, 1, "os", 1, "USER", 1, 1),
]


def _cells(path: Path) -> list[list[str]]:
    return [[cell.strip() for cell in line.split(",")] for line in path.read_text().splitlines()]


def _compare(ours: Path, theirs: Path, tally: Counter, total: Counter) -> list[str]:
    """Cell-by-cell comparison of the report texts (exact strings: same ints, same float digits)."""
    mismatches = []
    for name in REPORTS:
        mine, ref = _cells(ours / name), _cells(theirs / name)
        assert mine[0] == ref[0], f"{name}: header differs"
        assert len(mine) == len(ref), f"{name}: {len(mine) - 1} rows, SCALE-Sim has {len(ref) - 1}"
        for row_mine, row_ref in zip(mine[1:], ref[1:]):
            for column, got, expected in zip(ref[0], row_mine, row_ref):
                total[column] += 1
                if got == expected:
                    tally[column] += 1
                else:
                    mismatches.append(f"{name} layer {row_ref[0]} {column}: {got} != {expected}")
    return mismatches


@pytest.mark.parametrize("gemm", [False, True], ids=["conv", "gemm"])
@pytest.mark.parametrize("seed, rows, cols, dataflow, sram_kb, interface, fill, drain", CASES)
def test_reports_match_scalesim(tmp_path, seed, rows, cols, dataflow, sram_kb, interface, fill, drain, gemm):
    rng = random.Random(seed * 2 + gemm)
    topo = random_topology(rng, tmp_path / "topo.csv", gemm=gemm)
    config = ScaleSimConfig(run_name="peer", rows=rows, cols=cols, ifmap_kb=sram_kb, filter_kb=sram_kb,
                            ofmap_kb=sram_kb, dataflow=dataflow, interface_bandwidth=interface,
                            bandwidth=(drain,), ifmap_bank_bandwidth=fill, filter_bank_bandwidth=fill)
    theirs = run_peer(PEER, config, topo, tmp_path / "peer", gemm=gemm, timeout_s=300)
    words = (sram_kb * 1024,) * 3
    reports = [simulate_buffers(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=words,
                                interface=interface, fill_words_per_cycle=(fill, fill), drain_words_per_cycle=drain)
               for layer in read_topology(topo, gemm=gemm)]
    ours = tmp_path / "ours"
    write_reports(reports, ours)
    tally, total = Counter(), Counter()
    mismatches = _compare(ours, theirs, tally, total)
    rates = {column: f"{tally[column]}/{total[column]}" for column in total if tally[column] != total[column]}
    assert not mismatches, f"pass rates {rates}; first mismatches: {mismatches[:8]}"
