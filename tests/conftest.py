"""Shared fixtures: a small torch-free layer graph and a helper to run the CLI in-process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hwsim.ir import Layer, LayerGraph, Op


def tiny_graph() -> LayerGraph:
    """conv -> depthwise -> pool -> linear, plus a residual add: every path of simulate in 5 layers."""
    graph = LayerGraph("tiny", input_shape=(1, 3, 16, 16))
    graph.add_layer(Layer("conv", Op.CONV, K=16, C=3, P=16, Q=16, R=3, S=3, padding=1, input_size=16))
    graph.add_layer(Layer("dw", Op.DEPTHWISE, K=16, C=16, G=16, P=16, Q=16, R=3, S=3, padding=1), ["conv"])
    graph.add_layer(Layer("add", Op.ELTWISE, K=16, P=16, Q=16), ["conv", "dw"])
    graph.add_layer(Layer("pool", Op.POOL, K=16, C=16, G=16, P=1, Q=1, R=16, S=16), ["add"])
    graph.add_layer(Layer("fc", Op.LINEAR, K=10, C=16), ["pool"])
    return graph


@pytest.fixture(autouse=True)
def private_graph_cache(tmp_path, monkeypatch):
    """Every test gets its own sweep graph cache, never the user's (a test must not see another's graphs)."""
    folder = tmp_path / "graph-cache"
    monkeypatch.setenv("HWSIM_GRAPH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def tiny_graph_path(tmp_path):
    return tiny_graph().save(tmp_path / "tiny.json")


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """Run ``hwsim ARGS`` in a fresh interpreter (so import side effects are real)."""
    code = "import sys; from hwsim.cli import main; sys.argv = ['hwsim'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture
def one_torch_thread():
    """Tiny tensors run faster on one torch thread (and far faster on a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ZigZag's ResNet-18 accelerators and their mapping files (zigzag-dse 3.9.1 inputs/)
ZIGZAG_RESNET18 = {"tpu_like": "tpu_like", "eyeriss_like": "default", "edge_tpu_like": "edge_tpu_like",
                   "meta_prototype": "meta_prototype_like", "ascend_like": "ascend_like",
                   "tesla_npu_like": "tesla_npu_like"}


@pytest.fixture(scope="session")
def zigzag_resnet18(tmp_path_factory):
    """Run ZigZag (opt=energy, its defaults) on ResNet-18 once per accelerator per session and share it:
    ``run(accel) -> (hardware, mapping, workload, dump_folder, {layer name: cme}, zigzag seconds)``.
    The replay and search-comparison peer tests both need the same ~100 s runs."""
    import time
    from pathlib import Path
    runs: dict = {}

    def run(accel: str):
        if accel not in runs:
            import zigzag
            from zigzag.api import get_hardware_performance_zigzag
            inputs = Path(zigzag.__file__).parent / "inputs"
            hardware = inputs / "hardware" / f"{accel}.yaml"
            mapping = inputs / "mapping" / f"{ZIGZAG_RESNET18[accel]}.yaml"
            workload = inputs / "workload" / "resnet18.onnx"
            dump = tmp_path_factory.mktemp(f"zigzag_{accel}")
            start = time.perf_counter()
            _, _, cmes = get_hardware_performance_zigzag(workload=str(workload), accelerator=str(hardware),
                                                         mapping=str(mapping), opt="energy", dump_folder=str(dump),
                                                         pickle_filename=str(dump / "cmes.pickle"))
            seconds = time.perf_counter() - start
            runs[accel] = (hardware, mapping, workload, dump, {str(c.layer.name): c for c, _ in cmes[0][1]}, seconds)
        return runs[accel]
    return run
