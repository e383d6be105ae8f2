"""The real evaluator (simulate_graph on a saved graph), the CLI, Dask, ranking, and the torch-free rule."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from hwsim.dse.runner import run_sweep
from hwsim.dse.store import ResultStore
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate_graph
from tests.conftest import run_cli, tiny_graph


def graph_spec(graph_path, **changes):
    spec = {"name": "tiny", "models": [str(graph_path)], "arch": {"base": "edge_tpu_like",
            "params": {"systolic.rows": [16, 32, 64], "memory.SRAM.partition_bytes.W": [65536, 1048576]},
            "link": {"systolic.cols": "systolic.rows"}},
            "objectives": ["latency", "energy", "area"], "constraints": ["power_mw <= 5000"]}
    spec.update(changes)
    return spec


def test_real_points_match_simulate(tiny_graph_path, tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = run_sweep(graph_spec(tiny_graph_path), store)
        assert (summary.evaluated, summary.failed) == (6, 0)
        record = next(r for r in store.records() if r["params"]["hw.systolic.rows"] == 32
                      and r["params"]["hw.memory.SRAM.partition_bytes.W"] == 65536)
    arch = load_arch("edge_tpu_like").with_overrides({"systolic.rows": 32, "systolic.cols": 32,
                                                     "memory.SRAM.partition_bytes.W": 65536})
    expected = simulate_graph(tiny_graph(), arch).total
    for metric in ("latency_s", "energy_pj", "area_mm2", "power_mw", "edp_pj_s"):
        assert record["objectives"][metric] == pytest.approx(expected[metric], rel=1e-12)
    assert [row[0] for row in record["layers"]["rows"]] == ["conv", "dw", "add", "pool", "fc"]
    assert record["meta"]["peak_macs_per_cycle"] == 32 * 32
    assert (tmp_path / "s.sqlite.graphs").is_dir() is False      # saved graphs need no cache


def test_cli_dry_run_sweep_and_report(tiny_graph_path, tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(graph_spec(tiny_graph_path)))
    dry = run_cli("sweep", str(spec_path), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("6 points"), dry.stderr
    store = tmp_path / "s.sqlite"
    run = run_cli("sweep", str(spec_path), "--store", str(store), "--workers", "1", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "6 evaluated, 0 already stored" in run.stderr and "Pareto front" in run.stdout
    again = run_cli("sweep", str(spec_path), "--store", str(store), "--workers", "1")
    assert "0 evaluated, 6 already stored" in again.stderr
    out = tmp_path / "r.html"
    rep = run_cli("report", str(store), "-o", str(out), "--json", str(tmp_path / "r.json"),
                  "--objectives", "latency,energy,area")
    assert rep.returncode == 0, rep.stderr
    assert out.stat().st_size > 1_000_000 and len(json.loads((tmp_path / "r.json").read_text())) == 6


def test_cli_sweep_lists_failed_points_and_exits_1(tiny_graph_path, tmp_path):
    spec = graph_spec(tiny_graph_path)
    # one point asks for 64-bit SRAM words in a 4-byte partition: an impossible design, stored as a failure
    spec["arch"]["params"] = {"memory.SRAM.partition_bytes.W": [65536, 4], "memory.SRAM.word_bits": [8, 64]}
    spec["arch"]["link"] = {}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    store = tmp_path / "s.sqlite"
    run = run_cli("sweep", str(spec_path), "--store", str(store), "--workers", "1", "--quiet")
    assert run.returncode == 1, run.stderr
    assert "failed" in run.stderr and "smaller than one 64-bit word" in run.stderr
    kept = run_cli("sweep", str(spec_path), "--store", str(store), "--workers", "1", "--quiet", "--keep-going")
    assert kept.returncode == 0, kept.stderr
    unknown = graph_spec(tiny_graph_path, models=["not_a_model"])
    spec_path.write_text(yaml.safe_dump(unknown))
    dry = run_cli("sweep", str(spec_path), "--dry-run")
    assert dry.returncode == 2 and "unknown model 'not_a_model'" in dry.stderr


def test_cli_rank_rejects_unknown_options():
    run = run_cli("rank", "digits_cnn", "--mapper", "search")
    assert run.returncode == 2 and "unknown option(s) --mapper" in run.stderr


def test_cli_bad_spec_is_one_line_exit_2(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"models": ["x.json"], "arch": {"base": "edge_tpu_like",
                                         "params": {"systolic.rowz": [8]}}}))
    run = run_cli("sweep", str(spec_path), "--dry-run")
    assert run.returncode == 2
    assert "spec.yaml: arch.params.systolic.rowz" in run.stderr and "Traceback" not in run.stderr


def test_dask_local_cluster_matches_serial(tiny_graph_path, tmp_path):
    distributed = pytest.importorskip("distributed")

    with ResultStore(tmp_path / "a.sqlite") as store:
        run_sweep(graph_spec(tiny_graph_path), store)
        serial = {r["key"]: r["objectives"] for r in store.records()}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  death_timeout=60) as cluster, distributed.Client(cluster, timeout=60) as client:
        with ResultStore(tmp_path / "b.sqlite") as store:
            summary = run_sweep(graph_spec(tiny_graph_path), store, backend=client)   # wrapped by as_backend
            remote = {r["key"]: r["objectives"] for r in store.records()}
    assert summary.evaluated == 6 and remote == serial


def test_dse_imports_no_torch():
    code = ("import sys, hwsim.dse.runner, hwsim.dse.report, hwsim.dse.rank, hwsim.dse.pareto, hwsim.cli.dse; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
