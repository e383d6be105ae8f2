"""The sweep loop and the SQLite store: resume, no duplicates, failures, backends, kill and resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwsim.dse.runner import ProcessBackend, SerialBackend, run_sweep
from hwsim.dse.store import ResultStore
from tests.dse_fakes import failing_evaluate, fake_evaluate, fake_spec

ROOT = Path(__file__).resolve().parents[1]


def _keys(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT key FROM points")]


def test_sweep_stores_every_point_once_and_resumes(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        first = run_sweep(fake_spec(tmp_path), store, evaluate=fake_evaluate)
        assert (first.proposed, first.evaluated, first.skipped, first.failed) == (27, 27, 0, 0)
        again = run_sweep(fake_spec(tmp_path), store, evaluate=fake_evaluate)
        assert (again.evaluated, again.skipped) == (0, 27)
        assert store.count() == 27 == store.count(sweep="fake")
        record = next(store.records())
        assert record["params"] == {"model": "m", "recipe": "dense", "hw.systolic.rows": 8,
                                    "hw.memory.GLB.size_bytes": 16384}
        # 1e6 MACs on an 8x8 array: 1e6/64 + 8 + 8 cycles at 1 GHz
        assert record["objectives"]["latency_s"] == pytest.approx((1e6 / 64 + 16) / 1e9)
        assert record["layers"]["columns"][0] == "name" and len(record["layers"]["rows"]) == 2


def test_changed_arch_value_is_a_new_point(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        run_sweep(fake_spec(tmp_path), store, evaluate=fake_evaluate)
        spec = fake_spec(tmp_path, name="other")
        spec["arch"]["fixed"] = {"clock_hz": 5e8}
        summary = run_sweep(spec, store, evaluate=fake_evaluate)
        assert summary.evaluated == 27 and store.count() == 54 and store.count(sweep="other") == 27


def test_random_duplicates_are_evaluated_once(tmp_path):
    spec = fake_spec(tmp_path, sampler={"kind": "random", "n": 60, "seed": 0})
    spec["arch"]["params"]["memory.GLB.size_bytes"] = [16384, 65536, 262144]
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = run_sweep(spec, store, evaluate=fake_evaluate)
        keys = _keys(tmp_path / "s.sqlite")
        assert len(keys) == len(set(keys)) == summary.evaluated
        assert summary.evaluated + summary.skipped == 60 and summary.evaluated <= 27


def test_failures_are_recorded_and_retried_on_request(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = run_sweep(fake_spec(tmp_path), store, evaluate=failing_evaluate)
        assert summary.failed == 9 and summary.evaluated == 18          # every 32-row point fails
        bad = next(store.records(status="error"))
        assert "no mapping fits a 32-row array" in bad["error"]
        assert run_sweep(fake_spec(tmp_path), store, evaluate=fake_evaluate).skipped == 27
        retry = run_sweep(fake_spec(tmp_path), store, evaluate=fake_evaluate, retry_errors=True)
        assert retry.evaluated == 9 and store.count(status="ok") == 27 and store.count() == 27


def test_invalid_point_becomes_an_error_row(tmp_path):
    # each value is valid on its own, but a 4-byte buffer cannot hold one 64-bit word
    spec = fake_spec(tmp_path, recipes={"dense": None})
    spec["arch"]["params"] = {"memory.GLB.size_bytes": [16384, 4], "memory.GLB.word_bits": [8, 64]}
    spec["arch"]["link"] = {}
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = run_sweep(spec, store, evaluate=fake_evaluate)
        assert (summary.evaluated, summary.failed) == (3, 1)
        bad = next(store.records(status="error"))
        assert bad["params"]["hw.memory.GLB.size_bytes"] == 4 and "smaller than one 64-bit word" in bad["error"]
        assert run_sweep(spec, store, evaluate=fake_evaluate).skipped == 4


def test_process_backend_matches_serial(tmp_path):
    with ResultStore(tmp_path / "a.sqlite") as serial_store:
        run_sweep(fake_spec(tmp_path), serial_store, evaluate=fake_evaluate)
        serial = {r["key"]: r["objectives"] for r in serial_store.records()}
    backend = ProcessBackend(2)
    try:
        with ResultStore(tmp_path / "b.sqlite") as store:
            summary = run_sweep(fake_spec(tmp_path), store, backend=backend, evaluate=fake_evaluate, chunk_size=4)
            pooled = {r["key"]: r["objectives"] for r in store.records()}
    finally:
        backend.close()
    assert summary.evaluated == 27 and pooled == serial


def test_nsga2_sweep_runs_and_resumes(tmp_path):
    spec = fake_spec(tmp_path, sampler={"kind": "nsga2", "n": 30, "population": 6, "seed": 0})
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = run_sweep(spec, store, evaluate=fake_evaluate)
        assert summary.proposed == 30 and summary.evaluated + summary.skipped == 30
        assert store.count() == summary.evaluated
        again = run_sweep(spec, store, evaluate=fake_evaluate)      # same seed: every point is already stored
        assert again.evaluated == 0 and again.skipped == 30


def _start(tmp_path, store, *, workers: int, sleep_s: float) -> subprocess.Popen:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.dse_fakes import run_fake_sweep; "
            "run_fake_sweep(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))")
    return subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(tmp_path), str(store), str(workers),
                             str(sleep_s)], cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE)


def _count(store) -> int:
    try:
        with sqlite3.connect(store, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    store = tmp_path / "s.sqlite"
    proc = _start(tmp_path, store, workers=2, sleep_s=0.2)
    deadline = time.time() + 60
    while _count(store) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)                   # the sweep and its pool workers, mid-run
    proc.wait(timeout=30)
    killed_at = _count(store)
    assert 5 <= killed_at < 27
    rerun = _start(tmp_path, store, workers=1, sleep_s=0.0)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()
    keys = _keys(store)
    assert len(keys) == 27 == len(set(keys))
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        statuses = {row[0] for row in conn.execute("SELECT status FROM points")}
    assert statuses == {"ok"}


def test_two_writer_processes_share_one_store(tmp_path):
    store = tmp_path / "s.sqlite"
    procs = [_start(tmp_path, store, workers=1, sleep_s=0.01) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    keys = _keys(store)
    assert len(keys) == 27 == len(set(keys))
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_serial_backend_surfaces_errors_from_the_loop(tmp_path):
    def broken(_tasks):
        raise RuntimeError("backend down")

    class Broken(SerialBackend):
        def submit(self, fn, *args):
            return super().submit(broken, args)

    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(RuntimeError, match="backend down"):
        run_sweep(fake_spec(tmp_path), store, backend=Broken(), evaluate=fake_evaluate)
        assert store.count() == 0
