"""Run a command and measure its whole process tree: wall time, CPU time, peak summed RSS.

    python benchmarks/proctree.py -- hwsim sweep configs/sweeps/example.yaml --store /tmp/x.sqlite -j 2
    python benchmarks/proctree.py --json out.json --label serial -- hwsim sweep ...

A sweep's memory is the parent plus its workers (and whatever they spawn), so one process's
``ru_maxrss`` under-reports it. This samples the tree every ``--interval`` seconds with psutil and
records the largest sum of resident set sizes seen (shared pages counted once per process, so the
figure is an upper bound, the same way ``ps``/``top`` would add them up). CPU time is the user +
system time of the command and every descendant it waited for (``RUSAGE_CHILDREN`` after it exits).
The machine's 1-minute load average before and after the run is recorded with the figures, because
the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil


def _tree_rss(root: psutil.Process, cpu: dict[int, float] | None = None,
              parents: dict[int, int] | None = None) -> tuple[int, int]:
    """(sum of RSS in bytes, number of processes) of ``root`` and all its descendants, right now.

    ``cpu``: updated with each process's CPU seconds so far (user + system), by pid; ``parents``: each
    process's parent pid.
    """
    total, count = 0, 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
            count += 1
            if cpu is not None:
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
            if parents is not None and proc.pid not in parents:
                parents[proc.pid] = proc.ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, count


def measure(command: list[str], *, interval: float | None = 0.05, env: dict[str, str] | None = None,
            cwd: str | None = None, timeline_s: float | None = None) -> dict[str, Any]:
    """Run ``command`` to completion; its wall and CPU seconds, peak tree RSS and exit code.

    ``timeline_s``: also keep ``[seconds, tree RSS MB, processes]`` every that many seconds (memory
    that stays flat over a long run shows as a flat timeline). ``interval=None``: no sampling (wall, CPU
    and exit code only): the sampler reads ``/proc`` for every process of the tree 20 times a second,
    CPU a run that keeps every core busy would otherwise have.
    """
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = {"rss": 0, "procs": 0}
    timeline: list[list[float]] = []
    cpu_by_pid: dict[int, float] = {}
    parent_of: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, count = _tree_rss(root, cpu_by_pid, parent_of)
            if rss > peak["rss"]:
                peak["rss"] = rss
            peak["procs"] = max(peak["procs"], count)
            now = time.perf_counter() - start
            if timeline_s is not None and (not timeline or now - timeline[-1][0] >= timeline_s):
                timeline.append([round(now, 1), round(rss / 2**20, 1), count])
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    if interval is not None:
        sampler.start()
    _, stderr = proc.communicate()
    done.set()
    if interval is not None:
        sampler.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    extra = {"timeline": timeline} if timeline_s is not None else {}
    # CPU seconds of each process as last sampled (to within one interval): with one process per core
    # the busiest one bounds the wall time the run would take on an otherwise idle machine
    extra["cpu_s_per_process"] = sorted((round(v, 2) for v in cpu_by_pid.values()), reverse=True)
    # a process starts only after its parent got to fork it: a worker forked by a fork server waits for the
    # server's preload, so the longest chain of CPU below the root (a worker plus the descendants of the root
    # it descends from) is what the run would take on idle cores, after the root's own start-up
    def chain(pid: int) -> float:
        total = 0.0
        while pid in cpu_by_pid and pid != proc.pid:
            total, pid = total + cpu_by_pid[pid], parent_of.get(pid, proc.pid)
        return total
    extra["cpu_s_longest_chain_below_root"] = round(max((chain(pid) for pid in cpu_by_pid), default=0.0), 2)
    extra["cpu_s_root"] = round(cpu_by_pid.get(proc.pid, 0.0), 2)
    return {"command": " ".join(command), "returncode": proc.returncode, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "peak_tree_rss_mb": round(peak["rss"] / 2**20, 1) if interval is not None else None,
            "max_processes": peak["procs"], "load1_before": round(load_before, 2),
            "load1_after": round(os.getloadavg()[0], 2),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stderr_tail": stderr.decode(errors="replace").strip().splitlines()[-3:], **extra}


def append_result(path: Path, label: str, result: dict[str, Any]) -> None:
    """Add ``result`` under ``runs[label]`` (a list: repeats accumulate) in the JSON file ``path``."""
    data = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    data.setdefault("runs", {}).setdefault(label, []).append(result)
    data["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    path.write_text(json.dumps(data, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    parser.add_argument("--label", default="run", help="key of the run in the JSON file")
    parser.add_argument("--interval", type=float, default=0.05, help="sampling period in seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    result = measure(command, interval=args.interval)
    print(json.dumps(result, indent=1))
    if args.json:
        append_result(args.json, args.label, result)
    sys.exit(0 if result["returncode"] == 0 else 1)


if __name__ == "__main__":
    main()
