"""SCALE-Sim file formats: .cfg, topology and layout readers, report writer, topology export, CLI."""

from __future__ import annotations


import pytest

from conftest import run_cli, tiny_graph
from hwsim.errors import ConfigError
from hwsim.interop.scalesim import (ScaleSimConfig, config_to_arch, export_topology_csv, read_config, read_layout,
                                    read_topology, topology_to_layers, write_config, write_reports)
from hwsim.models import systolic
from hwsim.models.systolic.compat import ScaleSimLayer
from hwsim.models.systolic.compat_engine import compat_report

CONFIG = ScaleSimConfig(run_name="t1", rows=4, cols=4, ifmap_kb=64, filter_kb=64, ofmap_kb=64, dataflow="ws")
TOPOLOGY = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
            "c1, 8, 8, 3, 3, 3, 6, 1,\nc2, 9, 7, 2, 3, 5, 9, 2,\nDP3, 6, 6, 3, 3, 2, 3, 1,\n")
# SCALE-Sim 3.0.0 output for CONFIG + TOPOLOGY (python -m scalesim.scale, run 2026-11-25), verbatim
COMPUTE_REPORT = """LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,
0, 1086, 643, 0, 56.687402799377914, 72.32142857142857, 53.134110787172006,
1, 934, 599, 0, 42.257929883138566, 70.3125, 37.6674107142857,
2, 178, 77, 0, 35.064935064935064, 56.25, 31.03448275862069,
3, 178, 77, 0, 35.064935064935064, 56.25, 31.03448275862069,
"""
DETAIL_ROW0 = ("0, 5.0, 640.0, 1944, 1.0, 602.0, 162, 7.0, 641.0, 1512, -66.0, -1.0, 192, -66.0, -1.0, 162, "
               "643.0, 1020.0, 1512,")
BANDWIDTH_ROW1 = ("1, 2.2537562604340566, 0.4507512520868113, 1.8030050083472453, 4.7727272727272725, "
                  "4.090909090909091, 4.0,")


@pytest.fixture
def files(tmp_path):
    cfg = write_config(CONFIG, tmp_path / "s.cfg")
    topo = tmp_path / "topo.csv"
    topo.write_text(TOPOLOGY)
    layout = tmp_path / "layout.csv"
    layout.write_text("Layer name,\n")
    return cfg, topo, layout


def test_config_round_trip_and_arch(files):
    cfg, _, _ = files
    config = read_config(cfg)
    assert config == CONFIG
    arch = config_to_arch(config)
    assert (arch.systolic.rows, arch.systolic.cols, arch.systolic.mode) == (4, 4, "scalesim")
    assert arch.memory[-1].partition_bytes == {"I": 65536, "W": 65536, "O": 65536}


@pytest.mark.parametrize("section, key", [("general", "run_name"), ("architecture_presets", "ArrayHeight"),
                                          ("layout", "IfmapSRAMBankNum"), ("run_presets", "InterfaceBandwidth")])
def test_missing_key_is_one_clear_error(files, section, key):
    cfg, _, _ = files
    text = "\n".join(line for line in cfg.read_text().splitlines() if not line.lower().startswith(key.lower()))
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=rf"s\.cfg: section '{section}', key '{key}': missing required key"):
        read_config(cfg)


def test_missing_layout_section_like_shipped_eyeriss_cfg(files):
    cfg, _, _ = files
    cfg.write_text(cfg.read_text().split("[layout]")[0] + "[sparsity]\nSparsitySupport: false\n"
                   "[run_presets]\nInterfaceBandwidth: CALC\nUseRamulatorTrace: False\n")
    with pytest.raises(ConfigError, match=r"section 'layout', key 'IfmapCustomLayout': the section is missing"):
        read_config(cfg)


def test_ignored_sections_and_bad_values(files):
    cfg, _, _ = files
    cfg.write_text(cfg.read_text() + "\n[network_presets]\nTopologyCsvLoc: \"x.csv\"\n")
    assert read_config(cfg).rows == 4
    cfg.write_text(cfg.read_text().replace("Dataflow: ws", "Dataflow: rs"))
    with pytest.raises(ConfigError, match="'Dataflow': must be ws, os or is"):
        read_config(cfg)


def test_topology_with_and_without_trailing_commas(tmp_path):
    with_commas = tmp_path / "a.csv"
    with_commas.write_text(TOPOLOGY)
    without = tmp_path / "b.csv"
    without.write_text("\n".join(line.rstrip(",") for line in TOPOLOGY.splitlines()) + "\n")
    layers = read_topology(with_commas)
    assert layers == read_topology(without)
    assert [layer.name for layer in layers] == ["c1", "c2", "DP3Channel_0", "DP3Channel_1"]
    assert layers[2].channels == 1 and layers[2].num_filters == 3


def test_gemm_topology_and_hwsim_layers(tmp_path):
    topo = tmp_path / "g.csv"
    topo.write_text("Layer, M, N, K,\ng0, 10, 7, 12,\n")
    assert read_topology(topo, gemm=True) == [ScaleSimLayer.gemm("g0", m=10, n=7, k=12)]
    (linear,) = topology_to_layers(topo, gemm=True)
    assert linear.macs == 10 * 7 * 12
    conv = tmp_path / "c.csv"
    conv.write_text(TOPOLOGY)
    dw = topology_to_layers(conv)[2]
    assert (dw.op.value, dw.G, dw.K, dw.macs) == ("depthwise", 2, 6, 2 * 3 * 16 * 9)


def test_bad_topology_row(tmp_path):
    topo = tmp_path / "t.csv"
    topo.write_text("h,\nc1, 8, x, 3, 3, 3, 6, 1,\n")
    with pytest.raises(ConfigError, match=r"t\.csv: line 2: IFMAP Width must be an integer"):
        read_topology(topo)


def test_layout_reader(files):
    _, _, layout = files
    assert read_layout(layout) == []


def test_reports_match_scalesim_text(files, tmp_path):
    cfg, topo, _ = files
    from hwsim.models.systolic.buffers import simulate_calc
    reports = [simulate_calc(layer, rows=4, cols=4, dataflow="ws", sram_words=(65536,) * 3)
               for layer in read_topology(topo)]
    write_reports(reports, tmp_path / "out")
    assert (tmp_path / "out" / "COMPUTE_REPORT.csv").read_text() == COMPUTE_REPORT
    assert (tmp_path / "out" / "DETAILED_ACCESS_REPORT.csv").read_text().splitlines()[1] == DETAIL_ROW0
    assert (tmp_path / "out" / "BANDWIDTH_REPORT.csv").read_text().splitlines()[2] == BANDWIDTH_ROW1


def test_closed_form_report_agrees_with_buffer_port_when_stall_free(files):
    _, topo, _ = files
    from hwsim.models.systolic.buffers import simulate_calc
    for layer in read_topology(topo):
        closed = compat_report(layer, rows=4, cols=4, dataflow="ws")
        simulated = simulate_calc(layer, rows=4, cols=4, dataflow="ws", sram_words=(65536,) * 3)
        assert closed.sram == simulated.sram
        assert closed.total_cycles == simulated.total_cycles
        assert [d[2] for d in closed.dram] == [d[2] for d in simulated.dram]


def test_export_topology_round_trips_through_reader(tmp_path):
    path = export_topology_csv(tiny_graph(), tmp_path / "tiny.csv")
    lines = path.read_text().splitlines()
    assert lines[1] == "conv, 18, 18, 3, 3, 3, 16, 1,"                      # padded 16x16 input
    assert lines[2] == "dw_DP, 18, 18, 3, 3, 16, 1, 1,"
    assert lines[3] == "fc, 1, 16, 1, 16, 1, 10, 1,"                        # GEMM as 1xK conv
    layers = read_topology(path)
    graph_layers = tiny_graph().compute_layers()
    arch = config_to_arch(CONFIG)
    total = sum(systolic.evaluate(layer, arch, systolic.default_mapping(layer, arch)).compute_cycles
                for layer in graph_layers)
    assert total == sum(compat_report(layer, rows=4, cols=4, dataflow="ws").total_cycles for layer in layers)


def test_cli_writes_identical_reports(files, tmp_path):
    cfg, topo, layout = files
    out = tmp_path / "cli"
    proc = run_cli("scalesim", "-c", str(cfg), "-t", str(topo), "-l", str(layout), "-o", str(out), "--traces",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (out / "COMPUTE_REPORT.csv").read_text() == COMPUTE_REPORT
    assert (out / "layer0" / "IFMAP_SRAM_TRACE.csv").read_text().splitlines()[4] == "5,0,-1,-1,-1"
    phys = run_cli("scalesim", "-c", str(cfg), "-t", str(topo), "-o", str(tmp_path / "p"), "--compat", "physical",
                   "--quiet")
    assert phys.returncode == 0, phys.stderr
    assert len((tmp_path / "p" / "COMPUTE_REPORT.csv").read_text().splitlines()) == 4   # DP3 is one layer


def test_cli_bad_config_exit_code(tmp_path, files):
    _, topo, _ = files
    bad = tmp_path / "bad.cfg"
    bad.write_text("[general]\n")
    proc = run_cli("scalesim", "-c", str(bad), "-t", str(topo), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "bad.cfg: section 'general', key 'run_name': missing required key" in proc.stderr
