"""Replay every reference output of the Timeloop/Accelergy exercises with hwsim and compare.

Usage: python benchmarks/timeloop_exercises.py CHECKOUT [--json OUT]
CHECKOUT is a clone of Accelergy-Project/timeloop-accelergy-exercises (the numbers in the README are from
@2d55108). Every folder holding a ``timeloop-*.stats.txt`` is replayed with
``hwsim.interop.timeloop_outputs.replay_outputs``; the table gives cycles, total energy ratio and how many
per-instance (level, tensor) counts differ from Timeloop's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hwsim.interop.timeloop_outputs import replay_outputs


def compare(folder: Path) -> dict:
    start = time.perf_counter()
    replay = replay_outputs(folder)
    seconds = time.perf_counter() - start
    mine, theirs = replay["hwsim"], replay["timeloop"]
    mismatches = 0
    for level, tensors in theirs["storage_accesses"].items():
        for tensor, row in tensors.items():
            got = mine["storage_accesses"].get(level, {}).get(tensor, {})
            ours = tuple(got.get(a, got.get(b)) for a, b in (("reads_per_instance", "reads"),
                                                             ("fills_per_instance", "fills"),
                                                             ("updates_per_instance", "updates")))
            mismatches += ours != (row["reads_per_instance"], row["fills_per_instance"], row["updates_per_instance"])
    energy = mine.get("energy_pj", mine.get("total_energy_pJ"))
    return {"engine": replay["engine"], "cycles": [mine["cycles"], theirs["cycles"]],
            "energy_ratio": energy / theirs["total_energy_pJ"] if theirs["total_energy_pJ"] else None,
            "count_mismatches": mismatches, "hwsim_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--commit", default=None, help="the exercises commit the checkout holds (recorded in the JSON)")
    args = parser.parse_args()
    rows = {}
    for stats in sorted(args.checkout.glob("workspace/**/timeloop-*.stats.txt")):
        name = str(stats.parent.relative_to(args.checkout / "workspace"))
        try:
            rows[name] = compare(stats.parent)
        except Exception as err:  # noqa: BLE001 - report every folder
            rows[name] = {"error": f"{type(err).__name__}: {err}"}
        r = rows[name]
        print(f"{name:95s} " + (r["error"] if "error" in r else
              f"{r['engine']:7s} cycles {r['cycles'][0]}/{r['cycles'][1]} energy x{r['energy_ratio']:.4f} "
              f"count mismatches {r['count_mismatches']}"))
    if args.json:
        args.json.write_text(json.dumps({"exercises_commit": args.commit, "command": "python benchmarks/timeloop_exercises.py CHECKOUT",
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
