"""Timeloop output folders read and replayed (hwsim.interop.timeloop_outputs), v0.4 YAML inputs.

Fixtures: tests/data/timeloop/outputs/* (Timeloop's own reference outputs, see the README there). Timeloop's
counts are exact integers per instance; its printed energies are rounded to 0.01 pJ.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwsim.errors import ConfigError
from hwsim.interop.timeloop import _permutation, evaluate_reference_case, load_timeloop_yaml
from hwsim.interop.timeloop_outputs import case_from_outputs, replay_outputs, stats_from_text

OUT = Path(__file__).parent / "data" / "timeloop" / "outputs"
FOLDERS = sorted(p for p in OUT.iterdir() if p.is_dir())


def _counts(row: dict) -> tuple[int, int, int]:
    keys = (("reads_per_instance", "reads"), ("fills_per_instance", "fills"), ("updates_per_instance", "updates"))
    return tuple(int(row.get(a, row.get(b, -1))) for a, b in keys)


def test_four_output_folders_present():
    assert [p.name for p in FOLDERS] == ["dse_2024_fanout_to_macs", "eyeriss_like", "simba_like",
                                         "sparseloop_03_2_2_conv1d_oc"]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_timeloop_run_replays_exactly(folder):
    replay = replay_outputs(folder)
    mine, theirs = replay["hwsim"], replay["timeloop"]
    assert mine["cycles"] == theirs["cycles"]
    assert mine["computes"] == theirs["computes"]
    for level, tensors in theirs["storage_accesses"].items():
        for tensor, row in tensors.items():
            got = mine["storage_accesses"][level][tensor]
            assert _counts(got) == _counts(row), (level, tensor)
            assert got["energy_total_pJ"] == pytest.approx(row["energy_total_pJ"], rel=1e-3, abs=0.01), (level, tensor)
    total = mine.get("energy_pj", mine.get("total_energy_pJ"))
    assert total == pytest.approx(theirs["total_energy_pJ"], rel=1e-3)


def test_sparse_run_goes_to_the_sparse_model():
    replay = replay_outputs(OUT / "sparseloop_03_2_2_conv1d_oc")
    assert replay["engine"] == "sparse"
    assert (replay["hwsim"]["actual_computes"], replay["timeloop"]["actual_computes"]) == (188, 188)


def test_v04_yaml_inputs_reproduce_the_eyeriss_like_run(tmp_path):
    folder = OUT / "eyeriss_like"
    mapping = next(folder.glob("*.map.yaml"))
    arch, problem, mapped = load_timeloop_yaml(folder / "arch.yaml", folder / "problem.yaml", mapping)
    # the flattened hierarchy Timeloop printed: two fan-out levels, 168 PEs of three parallel scratchpads
    assert [(lvl.name, lvl.instances) for lvl in arch.memory] == [
        ("DRAM", 1), ("shared_glb", 1), ("inter_PE_column_spatial", 1), ("inter_PE_spatial", 14),
        ("ifmap_spad", 168), ("weights_spad", 168), ("psum_spad", 168)]
    from hwsim.models.spatial import analyze
    result = analyze(problem, arch, mapped)
    expected = case_from_outputs(folder)["key_results"]
    assert result.cycles == expected["cycles"] == 86016
    roles = {"Weights": "W", "Inputs": "I", "Outputs": "O"}
    for level, tensors in expected["storage_accesses"].items():
        for tensor, row in tensors.items():
            got = tuple(result.count(level, roles[tensor], a) for a in ("read", "write", "update"))
            assert got == _counts(row), (level, tensor)


def test_timeloops_multicast_is_per_identical_tile():
    # Eyeriss-like: the glb feeds 14 columns x (3 filter rows x 3 channels); input rows S + 2Q of neighbouring
    # columns overlap but are never identical, so Timeloop reads every PE's rows (1,354,752); reading each
    # overlap once (a diagonal-multicast network, spatial.multicast: union) moves fewer
    case = case_from_outputs(OUT / "eyeriss_like")
    identical = evaluate_reference_case(case)["storage_accesses"]["shared_glb"]["Inputs"]["reads_per_instance"]
    assert identical == case["key_results"]["storage_accesses"]["shared_glb"]["Inputs"]["reads_per_instance"] == 1354752
    from hwsim.models.spatial import analyze
    result = evaluate_reference_case(case)
    union_arch = result["arch"].model_copy(update={"spatial": result["arch"].spatial.model_copy(
        update={"multicast": "union"})})
    union = analyze(result["problem"], union_arch, result["mapping"]).count("shared_glb", "I", "read")
    assert union < identical


def test_permutations_in_every_spelling():
    dims = {"C": 1, "M": 8, "P": 2, "Q": 4}
    assert _permutation("QPCM", dims) == _permutation("Q P C M", dims) == _permutation(["Q", "P", "C", "M"], dims) \
        == ["Q", "P", "C", "M"]


def test_stats_parser_reads_levels_tensors_and_summary():
    stats = stats_from_text((OUT / "eyeriss_like" / "timeloop-mapper.stats.txt").read_text())
    assert stats["summary"]["Cycles"] == 86016 and stats["summary"]["Computes"] == 10838016
    assert stats["levels"]["psum_spad"]["tensors"]["Outputs"]["Scalar updates (per-instance)"] == 86016
    assert "Loop nest" not in stats["levels"]["psum_spad"]["tensors"]
    assert stats["fJ_per_compute"]["Total"] == pytest.approx(5469.65)


def test_not_an_output_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        case_from_outputs(tmp_path / "missing")
    with pytest.raises(ConfigError, match="parsed-processed-input.yaml"):
        case_from_outputs(tmp_path)


def test_mapping_naming_an_unknown_level_is_a_config_error(tmp_path):
    folder = OUT / "eyeriss_like"
    for f in folder.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    mapping = next(tmp_path.glob("*.map.yaml"))
    data = yaml.safe_load(mapping.read_text())
    data["mapping"][0]["target"] = "L9"
    mapping.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="unknown level 'L9'"):
        case_from_outputs(tmp_path)


def test_cli_prints_and_writes_the_comparison(tmp_path):
    from typer.testing import CliRunner
    from hwsim.cli import app
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["timeloop", str(OUT / "simba_like"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = __import__("json").loads(out.read_text())
    assert data["cycles"] == {"timeloop": 225792, "hwsim": 225792}
    assert all(tuple(r["timeloop"]) == tuple(r["hwsim"]) for r in data["rows"]) and len(data["rows"]) == 9
    missing = CliRunner().invoke(app, ["timeloop", str(tmp_path / "nope")])
    assert missing.exit_code != 0
