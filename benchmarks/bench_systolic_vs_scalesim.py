"""hwsim's systolic engine vs SCALE-Sim 3.0.0 on the same layers, side by side in one run.

    HWSIM_SCALESIM_PYTHON=/opt/scalesim-venv/bin/python python benchmarks/bench_systolic_vs_scalesim.py [--quick]

Every layer runs in SCALE-Sim's two memory interfaces, 64 kB SRAMs, ws dataflow, traces off:

* CALC (SCALE-Sim's default): estimate read buffers, ofmap drained at ``cols`` words/cycle;
* USER with a starved DRAM (4 words/cycle per read bank, 8 words/cycle drain): the prefetch
  buffers and the ofmap drain stall, so the stall machinery does real work.

Per layer: SCALE-Sim's CPU time (its ``run_scale`` call only, measured inside the peer process),
hwsim's compat mode with the Numba buffer port (the same report: stalls, DRAM counts and cycles),
and hwsim's stall-free closed forms; ratios printed. Both sides are timed in CPU seconds
(``time.process_time``), hwsim timeit's way (loops of calls lasting >= 0.2 s, best of 5 loops, after a
warm-up call), so a busy shared machine skews neither and the timer's own cost does not swamp a
microsecond call. A layer object is built once, as a topology row is: its derived sizes (ofmap
height/width, window) are cached on it, ~1 us that its first simulated call pays and the warm ones do not.
Layers SCALE-Sim would need more than its budget for (estimated from its measured cost per demand
row: ~45-145 us in CALC, ``shared/research/scalesim.md`` §9, ~575 us in USER) are skipped on its
side. Every layer SCALE-Sim ran is checked in the same run: hwsim's COMPUTE, BANDWIDTH and
DETAILED_ACCESS reports (cycles, stalls, utilizations, bandwidths, SRAM/DRAM access counts) must equal
SCALE-Sim's cell by cell, as in ``tests/test_scalesim_peers.py``; any disagreement is printed and the
benchmark exits 1. ``--layers N`` keeps the first N network layers (and one random layer per size). Also times a whole ResNet-50 on a 32x32 array (physical and compat closed-form modes, warm).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
import timeit
from pathlib import Path

import sys

from hwsim.interop.scalesim import ScaleSimConfig, write_config, write_reports
from hwsim.ir import Layer, Op
from hwsim.models.systolic.buffers import simulate_buffers
from hwsim.models.systolic.compat import ScaleSimLayer, compat_compute, scalesim_layer_from

SCALESIM_BUDGET_S = 120.0
# SCALE-Sim's cost per demand row (upper ends): CALC 45-145 us (research §9); USER measured here,
# 92.6 s for the 161,199 rows of random layer rand0 on 8x8 (575 us/row)
SCALESIM_US_PER_ROW = {"CALC": 150.0, "USER": 600.0}
SRAM_KB = 64
# interface -> (read-bank fill words/cycle, ofmap drain words/cycle); CALC uses SCALE-Sim's own (10, cols)
INTERFACES = {"CALC": None, "USER": (4, 8)}

# First five conv layers as hwsim.zoo lowers them (torchvision ResNet-18 / AlexNet definitions:
# He et al. 2016 Table 1, Krizhevsky et al. 2012 as in torchvision.models.alexnet), 224x224 input.
RESNET18 = [
    Layer("r18.conv1", Op.CONV, K=64, C=3, P=112, Q=112, R=7, S=7, stride=2, padding=3, input_size=224),
    *[Layer(f"r18.layer1.{i}", Op.CONV, K=64, C=64, P=56, Q=56, R=3, S=3, padding=1) for i in range(4)],
]
ALEXNET = [
    Layer("alex.features.0", Op.CONV, K=64, C=3, P=55, Q=55, R=11, S=11, stride=4, padding=2, input_size=224),
    Layer("alex.features.3", Op.CONV, K=192, C=64, P=27, Q=27, R=5, S=5, padding=2),
    Layer("alex.features.6", Op.CONV, K=384, C=192, P=13, Q=13, R=3, S=3, padding=1),
    Layer("alex.features.8", Op.CONV, K=256, C=384, P=13, Q=13, R=3, S=3, padding=1),
    Layer("alex.features.10", Op.CONV, K=256, C=256, P=13, Q=13, R=3, S=3, padding=1),
]

PEER_DRIVER = """
import sys, time, os
from scalesim.scale_sim import scalesim
cfg, topo, layout, out = sys.argv[1:5]
sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
               input_type_gemm=False)
start = time.process_time()
sim.run_scale(top_path=out)
print(time.process_time() - start)
"""


def random_layers(rng: random.Random, count: int) -> list[ScaleSimLayer]:
    out = []
    for i in range(count):
        r = rng.choice([1, 3, 3, 5])
        h = rng.randint(max(r, 8), 32)
        out.append(ScaleSimLayer(f"rand{i}", h, h, r, r, rng.choice([3, 16, 32, 64]),
                                 rng.choice([8, 16, 32, 64]), rng.choice([1, 1, 2]), 1))
    return [layer if layer.stride_w == layer.stride_h else ScaleSimLayer(
        layer.name, layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w, layer.channels,
        layer.num_filters, layer.stride_h, layer.stride_h) for layer in out]


def time_call(fn) -> float:
    """CPU seconds per call of ``fn``, timeit's way: loops of enough calls to last >= 0.2 s (so the
    timer's own ~0.5 us cost and its resolution vanish from microsecond calls), best of 5 loops
    (the one least disturbed by the rest of a shared machine), after one warm-up call."""
    fn()
    timer = timeit.Timer(fn, timer=time.process_time)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=number)) / number


REPORTS = ("COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv")


def _cells(path: Path) -> list[list[str]]:
    return [[cell.strip() for cell in line.split(",")] for line in path.read_text().splitlines()]


def report_mismatches(ours: Path, theirs: Path) -> list[str]:
    """Cell-by-cell differences between hwsim's and SCALE-Sim's report CSVs (exact strings)."""
    out = []
    for name in REPORTS:
        if not (theirs / name).exists():
            out.append(f"{name}: SCALE-Sim wrote no such report")
            continue
        mine, ref = _cells(ours / name), _cells(theirs / name)
        if mine[0] != ref[0] or len(mine) != len(ref):
            out.append(f"{name}: header or row count differs")
            continue
        out += [f"{name} {column}: hwsim {got} != SCALE-Sim {expected}"
                for row_mine, row_ref in zip(mine[1:], ref[1:])
                for column, got, expected in zip(ref[0], row_mine, row_ref) if got != expected]
    return out


def scalesim_seconds(python: str, layer: ScaleSimLayer, rows: int, cols: int, interface: str,
                     workdir: Path) -> tuple[float, Path] | None:
    """SCALE-Sim's run time for one layer and its report folder (None when skipped or failed)."""
    cycles = compat_compute(layer, rows=rows, cols=cols, dataflow="ws").cycles
    if cycles * SCALESIM_US_PER_ROW[interface] * 1e-6 > SCALESIM_BUDGET_S:
        return None
    bandwidths = INTERFACES[interface]
    extra = {} if bandwidths is None else {"bandwidth": (bandwidths[1],), "ifmap_bank_bandwidth": bandwidths[0],
                                           "filter_bank_bandwidth": bandwidths[0]}
    config = ScaleSimConfig(run_name="bench", rows=rows, cols=cols, ifmap_kb=SRAM_KB, filter_kb=SRAM_KB,
                            ofmap_kb=SRAM_KB, dataflow="ws", interface_bandwidth=interface, **extra)
    cfg = write_config(config, workdir / "bench.cfg")
    topo = workdir / "topo.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    f"Strides,\n{layer.name}, {layer.ifmap_h}, {layer.ifmap_w}, {layer.filter_h}, "
                    f"{layer.filter_w}, {layer.channels}, {layer.num_filters}, {layer.stride_h},\n")
    layout = workdir / "layout.csv"
    layout.write_text("Layer name,\n")
    driver = workdir / "driver.py"
    driver.write_text(PEER_DRIVER)
    out = Path(tempfile.mkdtemp(dir=workdir, prefix="out"))
    try:
        proc = subprocess.run([python, str(driver), str(cfg), str(topo), str(layout), str(out)],
                              capture_output=True, text=True, timeout=SCALESIM_BUDGET_S * 2, cwd=workdir)
        return float(proc.stdout.strip().splitlines()[-1]), out / config.run_name
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def bench_layer(python: str | None, layer: ScaleSimLayer, rows: int, cols: int, interface: str,
                workdir: Path) -> dict:
    words = (SRAM_KB * 1024,) * 3
    bandwidths = INTERFACES[interface]
    kwargs = {} if bandwidths is None else {"fill_words_per_cycle": (bandwidths[0],) * 2,
                                            "drain_words_per_cycle": bandwidths[1]}

    def run():
        return simulate_buffers(layer, rows=rows, cols=cols, dataflow="ws", sram_words=words, interface=interface,
                                **kwargs)

    report = run()
    sim_s = time_call(run)
    closed_s = time_call(lambda: compat_compute(layer, rows=rows, cols=cols, dataflow="ws"))
    peer = scalesim_seconds(python, layer, rows, cols, interface, workdir) if python else None
    peer_s, mismatches = None, None
    if peer:
        peer_s, theirs = peer
        ours = Path(tempfile.mkdtemp(dir=workdir, prefix="ours"))
        write_reports([report], ours)
        mismatches = report_mismatches(ours, theirs)
    return {"agree": None if mismatches is None else not mismatches, "mismatches": mismatches or [],"layer": layer.name, "array": f"{rows}x{cols}", "interface": interface, "macs": layer.macs,
            "cycles": report.total_cycles, "stalls": report.stall_cycles,
            "scalesim_s": peer_s, "hwsim_buffers_s": sim_s, "hwsim_closed_s": closed_s,
            "ratio_buffers": peer_s / sim_s if peer_s else None,
            "ratio_closed": peer_s / closed_s if peer_s and interface == "CALC" else None}


def bench_resnet50() -> dict:
    """Whole ResNet-50 (zoo lowering, torch needed once) on a 32x32 ws array, warm."""
    from hwsim.lower import load_graph
    from hwsim.models import systolic
    from hwsim.models.arch import load_arch

    graph = load_graph("resnet50")
    layers = graph.compute_layers()
    arch = load_arch("edge_tpu_like").with_overrides({"systolic.rows": 32, "systolic.cols": 32})
    compat_arch = arch.with_overrides({"systolic.mode": "scalesim"})

    def run(spec):
        return sum(systolic.evaluate(layer, spec, systolic.default_mapping(layer, spec)).cycles for layer in layers)

    return {"layers": len(layers), "physical_ms": 1e3 * time_call(lambda: run(arch)),
            "compat_closed_ms": 1e3 * time_call(lambda: run(compat_arch))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two network layers per net, three random layers")
    parser.add_argument("--no-resnet50", action="store_true")
    parser.add_argument("--interface", choices=[*INTERFACES, "both"], default="both")
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    parser.add_argument("--layers", type=int, help="only the first N network layers, one random layer per size")
    args = parser.parse_args()
    python = os.environ.get("HWSIM_SCALESIM_PYTHON")
    nets = [scalesim_layer_from(layer) for layer in (RESNET18[:2] + ALEXNET[:2] if args.quick else RESNET18 + ALEXNET)]
    if args.layers is not None:
        nets = nets[:args.layers]
    cases = [(layer, 32, 32) for layer in nets]
    rng = random.Random(0)
    for size in (8, 16, 32):
        cases += [(layer, size, size) for layer in random_layers(rng, 1 if args.quick or args.layers is not None else 3)]
    interfaces = list(INTERFACES) if args.interface == "both" else [args.interface]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for interface in interfaces:
            for layer, r, c in cases:
                rows.append(bench_layer(python, layer, r, c, interface, Path(tmp)))
                row = rows[-1]
                peer = f"{row['scalesim_s']:.2f}" if row["scalesim_s"] else "skipped"
                ratio_b = f"{row['ratio_buffers']:.0f}x" if row["ratio_buffers"] else "-"
                ratio_c = f"{row['ratio_closed']:.2e}x" if row["ratio_closed"] else "-"
                agree = {None: "not run", True: "agree", False: "DISAGREE"}[row["agree"]]
                print(f"{interface} {row['layer']:<17} {row['array']:>5} cycles={row['cycles']:>8} [{agree}] "
                      f"stalls={row['stalls']:>8} scalesim={peer:>7} s  "
                      f"hwsim(buffers)={1e3 * row['hwsim_buffers_s']:8.3f} ms ({ratio_b:>6})  "
                      f"hwsim(closed)={1e6 * row['hwsim_closed_s']:6.2f} us ({ratio_c})", flush=True)
    summary = {"layers": rows}
    if not args.no_resnet50:
        summary["resnet50_32x32"] = bench_resnet50()
        print("ResNet-50 on 32x32:", json.dumps(summary["resnet50_32x32"]))
    for interface in interfaces:
        ratios = [r["ratio_buffers"] for r in rows if r["ratio_buffers"] and r["interface"] == interface]
        if ratios:
            print(f"{interface}: min/median speed-up with buffers {min(ratios):.0f}x/{statistics.median(ratios):.0f}x "
                  f"over {len(ratios)} layers")
    closed = [r["ratio_closed"] for r in rows if r["ratio_closed"]]
    if closed:
        print(f"stall-free closed forms: min/median {min(closed):.2e}x/{statistics.median(closed):.2e}x")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    compared = [r for r in rows if r["agree"] is not None]
    bad = [r for r in compared if not r["agree"]]
    print(f"outputs checked against SCALE-Sim on {len(compared)} of {len(rows)} layer runs: "
          f"{len(compared) - len(bad)} agree, {len(bad)} disagree")
    for r in bad:
        print(f"DISAGREE {r['interface']} {r['layer']} {r['array']}: " + "; ".join(r["mismatches"][:6]))
    if bad or (python and not compared):
        sys.exit(1)


if __name__ == "__main__":
    main()
