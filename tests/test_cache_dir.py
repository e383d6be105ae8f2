"""Compiled kernels go to the per-user cache directory (HWSIM_CACHE_DIR), with a notice on a cold cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hwsim.ir import Layer, LayerGraph, Op


def test_kernels_are_cached_in_hwsim_cache_dir_with_a_notice(tmp_path):
    graph = LayerGraph("tiny")
    graph.add_layer(Layer("c", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3, padding=1))
    path = graph.save(tmp_path / "g.json")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["HWSIM_CACHE_DIR"] = str(tmp_path / "cache")
    # the SCALE-Sim compatible systolic mode runs one small Numba kernel (the physical mode runs none)
    import yaml

    from hwsim.models.arch import load_arch

    compat = load_arch("edge_tpu_like").with_overrides({"systolic.mode": "scalesim"})
    arch = tmp_path / "compat.yaml"
    arch.write_text(yaml.safe_dump(compat.model_dump(mode="json")))
    cmd = [sys.executable, "-m", "hwsim.cli", "simulate", str(path), "--arch", str(arch), "--quiet",
           "--json", str(tmp_path / "o.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "cache" / "numba").rglob("*.nbi")), "no kernel was cached in HWSIM_CACHE_DIR"
    assert json.loads((tmp_path / "o.json").read_text())["total"]["cycles"] > 0
    from hwsim._cache import cache_dir

    old = os.environ.get("HWSIM_CACHE_DIR")
    os.environ["HWSIM_CACHE_DIR"] = str(tmp_path / "elsewhere")
    try:
        assert cache_dir() == tmp_path / "elsewhere"
    finally:
        if old is None:
            del os.environ["HWSIM_CACHE_DIR"]
        else:
            os.environ["HWSIM_CACHE_DIR"] = old
