"""``hwsim.mappers.loma``: the per-operand (LOMA-like) search, on the tiny ZigZag fixture (no ZigZag needed).

tests/data/zigzag/tiny holds ZigZag's own dump (zigzag-dse 3.9.1, opt=energy) of two small layers on a
4 x 4 x 2 accelerator. The spatial mapping ZigZag derives from the mapping file is reproduced exactly; the
greedy allocation (LOMA's) lands exactly on ZigZag's recorded mapping energy; the full search is never worse;
and on a small layer it agrees with a brute force over every order of every prime factor and every cut point
of every operand, scored by the full model.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import pytest

from hwsim.errors import ConfigError
from hwsim.interop import zigzag_replay as zr
from hwsim.interop.zigzag import _read_yaml, load_zigzag_accelerator, load_zigzag_workload
from hwsim.interop.zigzag_score import ZigZagScorer, layer_z
from hwsim.interop.zigzag_spatial import mapping_entry, zigzag_spatial
from hwsim.mappers import LomaMapper, SearchMapper
from hwsim.mappers.loma import _tile_bits, distinct_orders, loop_prime_factors, orderings
from hwsim.models.spatial.zigzag_nest import OperandNest

TINY = Path(__file__).parent / "data" / "zigzag" / "tiny"


@pytest.fixture(scope="module")
def tiny():
    arch = load_zigzag_accelerator(TINY / "hardware.yaml", mapping=TINY / "mapping.yaml")
    limits, _ = zr._yaml_workload(TINY / "workload.yaml")
    layers = {}
    for layer in load_zigzag_workload(TINY / "workload.yaml"):
        if layer.name in limits:          # the real (unpadded) input the workload's pr_loop_sizes give
            layer = dataclasses.replace(layer, input_size=(limits[layer.name]["IY"], limits[layer.name]["IX"]))
        layers[layer.name] = layer
    recorded = {r["name"]: r for r in json.loads((TINY / "zigzag_numbers.json").read_text())["layers"]}
    dumps = {}
    for path in sorted((TINY / "dump").glob("*_complete.json")):
        record = zr._read_json(path)
        dumps[record["layer"]["name"]] = record
    return arch, layers, recorded, dumps, limits


def _canon(levels):
    return [sorted((d, float(f)) for d, f in level if f != 1) for level in levels]


def test_spatial_mapping_is_zigzags(tiny):
    arch, layers, _, dumps, _ = tiny
    scorer = ZigZagScorer(arch)
    entries = _read_yaml(TINY / "mapping.yaml")
    for name, record in dumps.items():
        lz = layer_z(layers[name], psum_bits=scorer.psum_bits)
        operator = "Gemm" if "D" in lz.sizes else "Conv"
        entry = mapping_entry(entries, name=name, operator=operator)
        spatial = zigzag_spatial(lz, scorer.hardware, scorer.links, entry)
        theirs = {t: _canon(zr._loops(level, where=name) for level in levels)
                  for t, levels in record["spatial"].items()}
        assert {t: _canon(v) for t, v in spatial.per_operand.items()} == theirs
        temporal: dict[str, int] = {}
        for level in record["temporal"]["O"]:
            for d, b in zr._loops(level, where=name):
                temporal[d] = temporal.get(d, 1) * b
        assert spatial.temporal == temporal
    # fc's K = 10 on a 4-wide array dimension is unrolled by 10 / ceil(10 / 4) = 3.33 for energy
    lz = layer_z(layers["fc"], psum_bits=scorer.psum_bits)
    spatial = zigzag_spatial(lz, scorer.hardware, scorer.links, mapping_entry(entries, name="fc", operator="Gemm"))
    assert spatial.factors["K"] == pytest.approx(10 / 3)


def test_prime_factor_loops_merge_like_loma():
    order = ("B", "K", "G", "OX", "OY", "C", "FX", "FY")
    # 8 factors over a limit of 6: K (four factors) merges 2 x 2, then K and C tie at three: K, listed first
    assert loop_prime_factors({"K": 16, "C": 12, "FX": 3}, 6, order) == [
        ("K", 4), ("K", 4), ("C", 2), ("C", 2), ("C", 3), ("FX", 3)]
    # the limit never drops below one loop per dim
    assert len(loop_prime_factors({"K": 8, "C": 8, "OX": 4, "OY": 4, "FX": 2, "FY": 2, "B": 2}, 6, order)) == 7
    lpfs = [("K", 2), ("K", 2), ("C", 3)]
    assert distinct_orders(lpfs) == len(orderings(lpfs)) == 3


def test_greedy_allocation_finds_zigzags_recorded_mapping(tiny):
    arch, layers, recorded, _, _ = tiny
    for name, layer in layers.items():
        greedy = LomaMapper(allocation="greedy", max_orderings=0).search(layer, arch)
        assert greedy.energy_pj == pytest.approx(recorded[name]["energy_pj"], rel=1e-9)
        assert greedy.cycles == pytest.approx(recorded[name]["latency_cycles"], rel=1e-9)
        best = LomaMapper().search(layer, arch)
        assert best.energy_pj <= recorded[name]["energy_pj"] * (1 + 1e-12)
        assert set(best.nests) == {"O", "W", "I"} and best.to_dict()["W"]["levels"][0]["memory"] == "rf_w"
        lat = LomaMapper(objective="latency", allocation="greedy").search(layer, arch)
        assert lat.cycles <= recorded[name]["latency_cycles"] + 1e-9
        refined = LomaMapper(objective="latency").search(layer, arch)     # LOMA's cuts, then moved
        assert refined.cycles <= lat.cycles and refined.evaluated >= lat.evaluated


def test_search_mapper_per_operand_space_is_the_loma_search(tiny):
    arch, layers, _, _, _ = tiny
    result = SearchMapper(objective="energy", cost="zigzag", space="per_operand").search(layers["fc"], arch)
    assert result.energy_pj == LomaMapper().search(layers["fc"], arch).energy_pj
    with pytest.raises(ConfigError, match="cost='zigzag'"):
        SearchMapper(space="per_operand")
    with pytest.raises(ConfigError, match="nests"):
        SearchMapper(cost="zigzag", space="per_operand").map(layers["fc"], arch)


# --- brute force reference -----------------------------------------------------------------------------------

def _fits(lz, nests, spatial, hardware, links):
    """ZigZag's capacity rule, written out: a memory holds its tile (the loops at and below it, spatial
    included; the output at partial-sum width while an irrelevant loop is still above its start), shared
    memories the sum of their operands' tiles."""
    chains = hardware.chains(links)
    used: dict[str, float] = {}
    for t, nest in nests.items():
        for m, mem in enumerate(chains[t]):
            loops = [x for lv in spatial.decimal[t][:m + 1] + nest.temporal[:m + 1] for x in lv]
            above = [d for lv in nest.temporal[m:] + spatial.decimal[t][m + 1:] for d, _ in lv]
            precision = lz.precision[t]
            if t == lz.output and not any(lz.is_irrelevant(t, d) for d in above):
                precision = lz.final_precision
            used[mem] = used.get(mem, 0) + _tile_bits(lz, t, loops, precision)
    sizes = {name: int(mem["size"]) for name, mem in hardware.memories}
    return all(bits <= sizes[mem] for mem, bits in used.items())


def _brute_force(lz, arch):
    """Every order of every prime factor x every cut point of every operand, full model, smallest energy."""
    scorer = ZigZagScorer(arch)
    hardware, links = scorer.hardware, scorer.links
    entries = _read_yaml(TINY / "mapping.yaml")
    spatial = zigzag_spatial(lz, hardware, links, mapping_entry(entries, name=lz.name, operator="Gemm"))
    primes = [(d, p) for d, q in spatial.temporal.items() for p in _primes(q)]
    chains = hardware.chains(links)
    best = math.inf
    for order in set(itertools.permutations(primes)):
        n = len(order)
        per_operand = []
        for t in lz.operands:
            options = []
            for cuts in itertools.combinations_with_replacement(range(n + 1), len(chains[t]) - 1):
                bounds = (0,) + cuts + (n,)
                temporal = tuple(tuple(order[bounds[m]:bounds[m + 1]]) for m in range(len(chains[t])))
                options.append(OperandNest(operand=t, temporal=temporal, spatial=spatial.per_operand[t]))
            per_operand.append(options)
        for combo in itertools.product(*per_operand):
            nests = dict(zip(lz.operands, combo))
            if not _fits(lz, nests, spatial, hardware, links):
                continue
            row = zr.evaluate_nests(lz, nests, hardware, links, spatial.unrolling, mac_pj=scorer.mac_pj)
            best = min(best, row["energy_pj"])
    return best


def _primes(n):
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def test_search_agrees_with_brute_force_on_a_small_layer(tiny):
    arch, layers, recorded, _, _ = tiny
    small = dataclasses.replace(layers["fc"], C=12, K=8)         # temporal loops C 3, K 2, D 2
    lz = layer_z(small, psum_bits=ZigZagScorer(arch).psum_bits)
    reference = _brute_force(lz, arch)
    found = LomaMapper(lpf_limit=10).search(small, arch)
    assert found.energy_pj == pytest.approx(reference, rel=1e-12)
    greedy = LomaMapper(lpf_limit=10, allocation="greedy").search(small, arch)
    assert greedy.energy_pj >= found.energy_pj * (1 - 1e-12)
    # and on the fixture's fc layer the search is at most ZigZag's own recorded figure
    assert LomaMapper().search(layers["fc"], arch).energy_pj <= recorded["fc"]["energy_pj"] * (1 + 1e-12)
