"""``hwsim.interop.zigzag_score``: hwsim Mappings scored with ZigZag's accounting (the replay's code path).

Default suite: the tiny fixture's dumped ZigZag mappings (tests/data/zigzag/tiny) expressed as hwsim
``Mapping``s and converted back give the same per-operand nests and score exactly what ``replay`` gives
(``fc``); ``conv_s2``'s mapping is not expressible as one chain (its input SRAM holds ``OY`` below the weight
register's cut but above the output register's, and the output register has fewer copies than the weight
register, so it sits outside it in any single chain) and is refused with a ConfigError.

Peers (``-m peers``, zigzag-dse installed): on ZigZag's six ResNet-18 accelerators, hwsim's per-operand
search (``SearchMapper(cost="zigzag", space="per_operand")``) is at most ZigZag's LOMA energy, network total
and every layer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from hwsim.errors import ConfigError
from hwsim.interop import zigzag_replay as zr
from hwsim.interop.zigzag import load_zigzag_accelerator, load_zigzag_workload, replay
from hwsim.interop.zigzag_score import (ZigZagScorer, canonical, layer_z, mapping_to_nests, nests_to_mapping, score_zigzag,
                                        zigzag_search_arch)
from hwsim.mappers.mapping import LevelMapping, Mapping
from tests.conftest import ZIGZAG_RESNET18

TINY = Path(__file__).parent / "data" / "zigzag" / "tiny"


def _records():
    limits, _ = zr._yaml_workload(TINY / "workload.yaml")
    for path in sorted((TINY / "dump").glob("*_complete.json")):
        record = zr._read_json(path)
        yield record, limits.get(record["layer"]["name"], {}), path.name


def _hwsim_layer(name: str, limits: dict[str, int]):
    layer = {lay.name: lay for lay in load_zigzag_workload(TINY / "workload.yaml")}[name]
    if limits:                      # the real (unpadded) input the workload's pr_loop_sizes give
        layer = dataclasses.replace(layer, input_size=(limits["IY"], limits["IX"]))
    return layer


def _expressible_nests(scorer):
    """Per tiny-dump layer one chain can hold (conv_s2 cannot): record, layer, links, ZigZag's nests, limits."""
    for record, limits, where in _records():
        if record["layer"]["name"] == "conv_s2":
            continue
        lz = zr.layer_from_dump(record["layer"], limits, where=where)
        links = record["layer"]["memory_operand_links"]
        yield record, lz, links, zr._nests(record, lz, scorer.hardware.chains(links), where=where), limits


def test_tiny_dump_mapping_round_trips_and_scores_as_replay():
    arch = load_zigzag_accelerator(TINY / "hardware.yaml", mapping=TINY / "mapping.yaml")
    scorer = ZigZagScorer(arch)
    replayed = {row["name"]: row for row in replay(TINY / "hardware.yaml", TINY / "mapping.yaml",
                                                    TINY / "workload.yaml", TINY / "dump")}
    seen = 0
    for record, lz, links, nests, limits in _expressible_nests(scorer):
        gemm = "D" in record["layer"]["loop_dimensions"]
        mapping = nests_to_mapping(nests, record["layer"]["user_spatial_mapping"], arch, scorer.hardware, links,
                                   gemm=gemm)
        layer = _hwsim_layer(lz.name, limits)
        # hwsim's Layer read as ZigZag reads it: same loop sizes, relevance, windows and precisions
        mine = layer_z(layer, psum_bits=scorer.psum_bits)
        assert {d: s for d, s in mine.sizes.items() if s > 1} == {d: s for d, s in lz.sizes.items() if s > 1}
        assert mine.precision == lz.precision and mine.final_precision == lz.final_precision
        back, _ = mapping_to_nests(mapping, layer, scorer.hardware, links)
        assert {t: canonical(n) for t, n in back.items()} == {t: canonical(n) for t, n in nests.items()}
        score = scorer.score(layer, mapping)
        row = replayed[lz.name]
        assert score.energy_pj == pytest.approx(row["energy_pj"], rel=1e-12)
        assert score.latency_cycles == pytest.approx(row["latency_cycles"], rel=1e-12)
        assert score.fits                       # ZigZag chose it, so its tiles fit
        assert score_zigzag(layer, TINY / "hardware.yaml", mapping, mapping_yaml=TINY / "mapping.yaml") == \
            (score.energy_pj, score.latency_cycles)
        seen += 1
    assert seen == 1


def test_mapping_no_single_chain_holds_is_refused():
    arch = load_zigzag_accelerator(TINY / "hardware.yaml", mapping=TINY / "mapping.yaml")
    scorer = ZigZagScorer(arch)
    record, limits, where = next(r for r in _records() if r[0]["layer"]["name"] == "conv_s2")
    lz = zr.layer_from_dump(record["layer"], limits, where=where)
    links = record["layer"]["memory_operand_links"]
    nests = zr._nests(record, lz, scorer.hardware.chains(links), where=where)
    with pytest.raises(ConfigError, match="no single chain"):
        nests_to_mapping(nests, record["layer"]["user_spatial_mapping"], arch, scorer.hardware, links)


def test_recorded_zigzag_numbers_are_what_the_round_trip_scores():
    """The round trip lands on ZigZag's own recorded figures (within the replay's bar), not just on replay's."""
    recorded = {row["name"]: row for row in json.loads((TINY / "zigzag_numbers.json").read_text())["layers"]}
    arch = load_zigzag_accelerator(TINY / "hardware.yaml", mapping=TINY / "mapping.yaml")
    scorer = ZigZagScorer(arch)
    for record, lz, links, nests, limits in _expressible_nests(scorer):
        mapping = nests_to_mapping(nests, record["layer"]["user_spatial_mapping"], arch, scorer.hardware, links,
                                   gemm="D" in lz.sizes)
        score = scorer.score(_hwsim_layer(lz.name, limits), mapping)
        key = next(k for k in recorded[lz.name] if "energy" in k)
        assert score.energy_pj == pytest.approx(recorded[lz.name][key], rel=0.02)


def test_bigger_tiles_than_a_memory_holds_do_not_fit():
    arch = load_zigzag_accelerator(TINY / "hardware.yaml", mapping=TINY / "mapping.yaml")
    scorer = ZigZagScorer(arch)
    layer = _hwsim_layer("fc", {})
    names = [lvl.name for lvl in zigzag_search_arch(arch).memory]
    # everything temporal in the innermost level: the 8-byte weight register would hold 24 x 10 / 16 weights
    levels = [LevelMapping(level=n) for n in names[:-1]] + [
        LevelMapping(level=names[-1], temporal=(("P", 2), ("C", 6), ("K", 3)), spatial_x=()),]
    levels[1] = LevelMapping(level=names[1], spatial_x=(("K", 4), ("P", 2)), spatial_y=(("C", 4),))
    assert not scorer.score(layer, Mapping(levels=tuple(levels))).fits


def test_arch_not_from_zigzag_is_refused():
    with pytest.raises(ConfigError, match="zigzag.hardware"):
        ZigZagScorer(_plain_arch())


def _plain_arch():
    arch = load_zigzag_accelerator(TINY / "hardware.yaml", mapping=TINY / "mapping.yaml")
    sources = {k: v for k, v in arch.sources.items() if not k.startswith("zigzag.")}
    return arch.model_copy(update={"sources": sources})


# --- peers: hwsim's own searched mappings vs ZigZag's LOMA, both in ZigZag's accounting --------------------

RESNET18 = ZIGZAG_RESNET18


def _search_vs_zigzag(accel: str, zigzag_resnet18):
    """hwsim's per-operand search (SearchMapper(cost="zigzag", space="per_operand"), LOMA-like) vs ZigZag's
    LOMA on ResNet-18, both in ZigZag's accounting; layers with their real input extents (``onnx_layers``)."""
    from hwsim.interop.zigzag_score import onnx_layers
    from hwsim.mappers import SearchMapper
    hardware, mapping, workload, _, theirs, _ = zigzag_resnet18(accel)
    layers = onnx_layers(workload)
    arch = load_zigzag_accelerator(hardware, mapping=mapping)
    mapper = SearchMapper(objective="energy", cost="zigzag", space="per_operand")
    mine = {name: mapper.search(layers[name], arch) for name in theirs}
    energy = sum(r.energy_pj for r in mine.values()) / sum(c.energy_total for c in theirs.values())
    latency = sum(r.cycles for r in mine.values()) / sum(c.latency_total2 for c in theirs.values())
    worse = [n for n in theirs if mine[n].energy_pj > theirs[n].energy_total * (1 + 1e-9)]
    return energy, latency, worse


@pytest.mark.peers
@pytest.mark.skipif(importlib.util.find_spec("zigzag") is None, reason="zigzag-dse not installed")
@pytest.mark.parametrize("accel", list(RESNET18))
def test_resnet18_search_energy_at_most_zigzags(accel, zigzag_resnet18):
    energy, latency, worse = _search_vs_zigzag(accel, zigzag_resnet18)
    print(f"{accel}: hwsim-search / ZigZag-search energy x{energy:.9f}, latency x{latency:.4f}")
    # <= 1.0 up to float summation order (1e-9): the search contains LOMA's candidates and scores them exactly
    assert energy <= 1.0 + 1e-9
    assert not worse, f"layers where hwsim's search is above ZigZag's: {worse}"
