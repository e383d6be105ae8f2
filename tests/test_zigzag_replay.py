"""``hwsim.interop.zigzag.replay``: ZigZag's chosen mappings evaluated on hwsim's model of the hardware.

Default suite: a committed dump of ZigZag 3.9.1 on a tiny accelerator (tests/data/zigzag/tiny, made by
tests/data/zigzag/make_fixture.py) -- MACs exact, energy within 2 %, latency within 5 % of ZigZag's recorded
figures (the task's tolerances), and the latency parts (compute + stall, onload, offload + drain) equal to
the ones ZigZag dumped. Reader errors are ConfigErrors. ``-m peers``: ZigZag on ResNet-18 for the six
bundled accelerators that ship a ResNet-18 mapping, replayed layer by layer.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time
from pathlib import Path

import pytest

from hwsim.errors import ConfigError
from hwsim.interop.zigzag import replay
from hwsim.models.spatial.zigzag_latency import _reduce_largest_first, _window_union, drain_cycles
from hwsim.models.spatial.zigzag_nest import TO_LOW, LayerZ, Link, word_accesses
from tests.conftest import ZIGZAG_RESNET18

TINY = Path(__file__).parent / "data" / "zigzag" / "tiny"
ENERGY_TOL, LATENCY_TOL = 0.02, 0.05      # the parity bar (issue 17 item 2)


def _tiny(dump: Path | None = None) -> list[dict]:
    return replay(TINY / "hardware.yaml", TINY / "mapping.yaml", TINY / "workload.yaml", dump or TINY / "dump")


def test_tiny_replay_matches_zigzag_recorded_numbers():
    recorded = {row["name"]: row for row in json.loads((TINY / "zigzag_numbers.json").read_text())["layers"]}
    rows = _tiny()
    assert [row["name"] for row in rows] == ["conv_s2", "fc"]
    # 8 K x 4 C x 7 x 7 outputs x 3 x 3 taps; 4 D x 24 C x 10 K (workload.yaml)
    assert [row["macs"] for row in rows] == [8 * 4 * 7 * 7 * 3 * 3, 4 * 24 * 10]
    for row in rows:
        zz = recorded[row["name"]]
        assert row["macs"] == row["zigzag_macs"]
        assert row["energy_pj"] == pytest.approx(zz["energy_pj"], rel=ENERGY_TOL)
        assert row["latency_cycles"] == pytest.approx(zz["latency_cycles"], rel=LATENCY_TOL)
        assert row["energy_pj"] == pytest.approx(row["mac_energy_pj"] + row["memory_energy_pj"])


def test_tiny_replay_latency_parts_are_zigzags():
    """Stall (the conv's SRAM port), onload, offload and the systolic drain, each against ZigZag's dump."""
    rows = {row["name"]: row for row in _tiny()}
    conv, fc = rows["conv_s2"], rows["fc"]
    assert conv["stall_cycles"] > 0                       # the case exercises the port-stall model
    for row in (conv, fc):
        assert row["compute_cycles"] + row["stall_cycles"] == row["zigzag_compute_cycles"]
        assert row["onload_cycles"] == row["zigzag_onload_cycles"]
        assert row["offload_cycles"] + row["drain_cycles"] == row["zigzag_offload_drain_cycles"]
        assert row["drain_cycles"] == 3                   # D2 (systolic) carries C x 4: 4 - 1 cycles


def test_window_size_is_clipped_to_the_real_input():
    # ResNet-18 conv1: 112 outputs at stride 2 under a 7-tap window span 229 rows; the input has 224
    layer = LayerZ(name="c", sizes={"OX": 112, "FX": 7}, operands=("O", "I"),
                   relevant={"O": frozenset({"OX"}), "I": frozenset()},
                   windows={"I": {"IX": (("OX", 2), ("FX", 1))}}, window_limit={"I": {"IX": 224}},
                   precision={"O": 16, "I": 8}, final_precision=8)
    assert layer.window_size("I", "IX", {"OX": 112, "FX": 7}) == 224
    assert layer.window_size("I", "IX", {"OX": 4, "FX": 3}) == 2 * 3 + 2 + 1
    assert layer.window_size("I", "IX", {"OX": 4}) == 4          # stride 2, one tap: 4 distinct rows
    assert layer.pr_dims("I") == {"OX": "IX", "FX": "IX"}


def test_word_accesses_round_per_period_to_the_narrow_port():
    link = Link()
    link.set(TO_LOW, amount=5, precision=8, period=1, count=3, avg_bw=0)
    # 40 bits per period on a port of 64..128 bits: one 64-bit access = half a 128-bit word, x 3 x 2 units
    assert word_accesses(link, TO_LOW, min_bw=64, max_bw=128, units=2) == 3
    link.set(TO_LOW, amount=0, precision=8, period=1, count=3, avg_bw=0)
    assert word_accesses(link, TO_LOW, min_bw=8, max_bw=8, units=1) == 0


@pytest.mark.parametrize("activities, union", [
    # (real, allowed, period, count): windows [0, 2) of every 4 cycles and [0, 1) of every 2 cover
    # cycles 0, 1, 2 of each 4-cycle period; 3 periods -> 9
    ([(1, 2, 4, 3), (1, 1, 2, 6)], 9),
    ([(1, 4, 4, 3), (1, 1, 2, 6)], 12),          # one link may use its whole period: the whole layer
])
def test_window_union(activities, union):
    assert _window_union(activities) == union


def test_reduce_largest_first_keeps_floors():
    assert _reduce_largest_first([10, 4, 6], [2, 1, 5], 9) == [2, 4, 5]   # 10 -> 2 (8), then 6 -> 5 (1)
    assert _reduce_largest_first([10, 4], [2, 1], 0) == [10, 4]
    assert drain_cycles({"D1": 32, "D2": 3}, frozenset({"D1", "D2"})) == 31 + 2
    assert drain_cycles({"D1": 32}, frozenset()) == 0


# --- reader errors -------------------------------------------------------------------------------------

def test_missing_dump_folder(tmp_path):
    with pytest.raises(ConfigError, match="dump folder not found"):
        _tiny(tmp_path / "nope")


def test_dump_without_loop_ordering(tmp_path):
    (tmp_path / "x_complete.json").write_text("{}")
    with pytest.raises(ConfigError, match="loop_ordering.txt not found"):
        _tiny(tmp_path)


def test_dump_without_layer_files(tmp_path):
    shutil.copy(TINY / "dump" / "loop_ordering.txt", tmp_path)
    with pytest.raises(ConfigError, match="no zigzag_layer_json"):
        _tiny(tmp_path)


def test_dump_with_a_broken_layer_file(tmp_path):
    shutil.copy(TINY / "dump" / "loop_ordering.txt", tmp_path)
    (tmp_path / "zigzag_layer_json").mkdir()
    (tmp_path / "zigzag_layer_json" / "conv_s2_complete.json").write_text('{"outputs": {}}')
    with pytest.raises(ConfigError, match=r"conv_s2_complete.json: not a ZigZag complete dump"):
        _tiny(tmp_path)


def test_dump_layer_not_in_workload(tmp_path):
    shutil.copytree(TINY / "dump", tmp_path / "dump")
    data = json.loads((tmp_path / "dump" / "fc_complete.json").read_text())
    data["inputs"]["layer"]["name"] = "fc_renamed"
    (tmp_path / "dump" / "fc_complete.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="'fc_renamed' .* not in the workload"):
        _tiny(tmp_path / "dump")


def test_dump_mapping_with_wrong_level_count(tmp_path):
    shutil.copytree(TINY / "dump", tmp_path / "dump")
    data = json.loads((tmp_path / "dump" / "fc_complete.json").read_text())
    data["inputs"]["temporal_mapping"]["W"].append([])
    data["inputs"]["spatial_mapping"]["W"].append([])
    (tmp_path / "dump" / "fc_complete.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"operand W has 3 memory levels in the mapping, 2 in the hardware"):
        _tiny(tmp_path / "dump")


def test_missing_hardware_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        replay(tmp_path / "hw.yaml", TINY / "mapping.yaml", TINY / "workload.yaml", TINY / "dump")


def test_imc_hardware_is_not_modelled(tmp_path):
    text = (TINY / "hardware.yaml").read_text().replace("  unit_energy: 0.04", "  is_imc: true\n  imc_type: analog\n"
                                                        "  unit_energy: 0.04")
    (tmp_path / "imc.yaml").write_text(text)
    with pytest.raises(ConfigError, match="in-memory-compute arrays .* not modelled"):
        replay(tmp_path / "imc.yaml", TINY / "mapping.yaml", TINY / "workload.yaml", TINY / "dump")


# --- peers: ZigZag on ResNet-18, six accelerators -------------------------------------------------------

RESNET18_ACCELERATORS = ZIGZAG_RESNET18


@pytest.mark.peers
@pytest.mark.skipif(importlib.util.find_spec("zigzag") is None, reason="zigzag-dse not installed")
@pytest.mark.parametrize("accel", list(RESNET18_ACCELERATORS))
def test_resnet18_replay_matches_zigzag(accel, zigzag_resnet18):
    hardware, mapping, workload, dump, theirs, zigzag_s = zigzag_resnet18(accel)
    start = time.perf_counter()
    rows = replay(hardware, mapping, workload, dump)
    hwsim_s = time.perf_counter() - start
    assert {row["name"] for row in rows} == set(theirs)
    for row in rows:
        cme = theirs[row["name"]]
        assert row["macs"] == cme.layer.total_mac_count, row["name"]
        assert row["energy_pj"] == pytest.approx(cme.energy_total, rel=ENERGY_TOL), row["name"]
        assert row["latency_cycles"] == pytest.approx(cme.latency_total2, rel=LATENCY_TOL), row["name"]
    energy = sum(r["energy_pj"] for r in rows) / sum(c.energy_total for c in theirs.values())
    latency = sum(r["latency_cycles"] for r in rows) / sum(c.latency_total2 for c in theirs.values())
    print(f"{accel}: energy x{energy:.6f} latency x{latency:.6f} zigzag {zigzag_s:.1f} s hwsim {hwsim_s:.2f} s")
    assert math.isfinite(energy) and math.isfinite(latency)
