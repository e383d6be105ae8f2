"""The CLI end to end: torch-free paths, stable JSON keys, one-line errors with exit codes."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import run_cli


def test_help_and_simulate_graph_do_not_import_torch(tiny_graph_path, tmp_path):
    out = tmp_path / "r.json"
    code = (
        "import sys\n"
        "from hwsim.cli import main\n"
        f"sys.argv = ['hwsim', 'simulate', {str(tiny_graph_path)!r}, '--arch', 'edge_tpu_like', '--json', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "assert 'torch' not in sys.modules, 'simulate graph.json imported torch'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) >= {"model", "arch", "total", "layers"}
    assert set(data["total"]) >= {"macs", "cycles", "latency_s", "energy_pj", "power_mw", "utilization",
                                  "area_mm2", "edp_pj_s", "tops_per_w", "energy_breakdown_pj"}
    assert [row["name"] for row in data["layers"]] == ["conv", "dw", "add", "pool", "fc"]
    assert set(data["layers"][0]) >= {"name", "op", "macs", "cycles", "energy_pj"}
    assert data["total"]["macs"] == 16 * 27 * 256 + 16 * 9 * 256 + 160
    assert data["total"]["cycles"] == sum(row["cycles"] for row in data["layers"])


def test_torch_free_imports():
    code = "import sys, hwsim.simulate, hwsim.models.arch, hwsim.ir, hwsim.cli; assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_csv_has_one_row_per_layer(tiny_graph_path, tmp_path):
    proc = run_cli("simulate", str(tiny_graph_path), "--csv", str(tmp_path / "l.csv"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "l.csv").open()))
    assert [row["name"] for row in rows] == ["conv", "dw", "add", "pool", "fc"]
    assert "Summary" in proc.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("simulate", "{graph}", "--arch", "nope"), 2, "error: unknown architecture 'nope'; presets: "),
        (("simulate", "no_such_model"), 2, "error: unknown model 'no_such_model'"),
        (("simulate", "{tmp}/missing.json"), 2, "missing.json' does not exist"),
        (("simulate", "{graph}", "--arch", "{tmp}/bad.yaml"), 2, "bad.yaml: malformed YAML at line"),
        (("simulate", "{graph}", "--arch", "{tmp}/badkey.yaml"), 2, "badkey.yaml: systolic.dataflow: Input should be"),
        (("simulate", "{graph}", "--input-shape", "1,x"), 2, "--input-shape: expected comma-separated integers"),
        (("simulate", "{graph}", "--tech", "fast"), 2, "--tech: expected a node such as 28nm"),
    ],
)
def test_bad_input_is_one_line_and_exit_code(args, code, message, tiny_graph_path, tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\nengine: [systolic\n")
    good = (tmp_path / "badkey.yaml")
    from hwsim.models.arch import load_arch

    data = load_arch("edge_tpu_like").model_dump(mode="json")
    data["systolic"]["dataflow"] = "diagonal"
    import yaml

    good.write_text(yaml.safe_dump(data))
    argv = [a.format(graph=tiny_graph_path, tmp=tmp_path) for a in args]
    proc = run_cli(*argv)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_map_prints_loop_nest_and_saves_yaml(tiny_graph_path, tmp_path):
    from hwsim.mappers import Mapping

    proc = run_cli("map", str(tiny_graph_path), "--arch", "eyeriss", "--layer", "conv", "--save", str(tmp_path / "m.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "conv (conv, 110,592 MACs)" in proc.stdout and "<< MAC >>" in proc.stdout
    assert Mapping.load(tmp_path / "m.yaml").to_loop_nest() in proc.stdout


def test_search_mapper_never_costs_more_energy_than_default(tiny_graph_path, tmp_path):
    runs = {}
    for mapper in ("default", "search"):
        out = tmp_path / f"{mapper}.json"
        proc = run_cli("simulate", str(tiny_graph_path), "--arch", "eyeriss", "--mapper", mapper,
                       "--objective", "energy", "--json", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        runs[mapper] = json.loads(out.read_text())["total"]
    assert runs["search"]["macs"] == runs["default"]["macs"]
    assert runs["search"]["energy_pj"] <= runs["default"]["energy_pj"]


class _Status:
    """Stands in for rich's status spinner: records start/stop."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


@pytest.mark.parametrize("numba_loaded", [False, True])
def test_compile_notice_starts_only_when_the_run_loads_numba(monkeypatch, numba_loaded):
    from hwsim import _cache
    from hwsim.cli import core

    status = _Status()
    monkeypatch.setattr(core.err_console, "status", lambda *args, **kw: status)
    monkeypatch.setattr(_cache, "kernels_cached", lambda: False)
    if numba_loaded:
        monkeypatch.setitem(sys.modules, "hwsim._numba", sys.modules.get("hwsim._numba", object()))
    else:
        monkeypatch.delitem(sys.modules, "hwsim._numba", raising=False)
    with core.compile_notice():
        assert status.events == (["start"] if numba_loaded else [])   # a closed-form engine: no spinner
        for hook in list(_cache.NUMBA_LOAD_HOOKS):                   # what hwsim._numba does on its import
            hook()
        assert status.events == ["start"]
    assert status.events == ["start", "stop"] and _cache.NUMBA_LOAD_HOOKS == []


def test_compile_notice_is_silent_with_a_warm_cache(monkeypatch):
    from hwsim import _cache
    from hwsim.cli import core

    status = _Status()
    monkeypatch.setattr(core.err_console, "status", lambda *args, **kw: status)
    monkeypatch.setattr(_cache, "kernels_cached", lambda: True)
    with core.compile_notice():
        pass
    assert status.events == [] and _cache.NUMBA_LOAD_HOOKS == []
