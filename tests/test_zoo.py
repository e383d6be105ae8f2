"""The model zoo: names, options, parameter counts and MACs against published / torchvision numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hwsim import zoo
from hwsim.errors import ConfigError, UnknownNameError

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

ALL = ["resnet18", "resnet50", "resnet152", "mobilenet_v1", "mobilenet_v2", "shufflenet_v1", "shufflenet_v2",
       "squeezenet1_1", "alexnet", "alexnet_orig", "vgg16", "ssdlite_mobilenet_v2", "vit_tiny", "lstm_kws",
       "digits_cnn", "digits_resnet18", "digits_mobilenet_v2"]
CNNS = [n for n in ALL if n not in ("vit_tiny", "lstm_kws")]
# Exact parameter counts.
PARAMS = {
    "resnet18": 11_689_512,        # torchvision 0.28.0 resnet18 (shared/research/frontend.md §0)
    "resnet50": 25_557_032,        # torchvision resnet50 model docs
    "resnet152": 60_192_808,       # torchvision resnet152 model docs
    "mobilenet_v1": 4_231_976,     # timm mobilenetv1_100 (frontend.md §4)
    "mobilenet_v2": 3_504_872,     # torchvision 0.28.0 mobilenet_v2 (frontend.md §0)
    "shufflenet_v2": 2_278_604,    # torchvision 0.28.0 shufflenet_v2_x1_0 (frontend.md §0)
    "squeezenet1_1": 1_235_496,    # torchvision 0.28.0 squeezenet1_1 (frontend.md §0)
    "alexnet": 61_100_840,         # torchvision alexnet model docs
    "alexnet_orig": 60_965_224,    # Caffe bvlc_alexnet; hand count below
    "vgg16": 138_357_544,          # torchvision vgg16 model docs
    "vit_tiny": 5_717_416,         # timm deit_tiny_patch16_224 (Touvron et al. 2021 report 5M)
    "lstm_kws": 834_572,           # 4H(F+H)+8H + 4H(2H)+8H + (12H+12) with F=40, H=256 (closed form)
}
# Exact MACs (FlopCounterMode flops / 2 on torchvision 0.28.0, frontend.md §0), or hand counts.
MACS = {
    "resnet18": 1_814_073_344, "mobilenet_v2": 300_774_272, "shufflenet_v2": 144_907_992,
    "squeezenet1_1": 349_151_936,
    "alexnet_orig": 724_406_816,   # hand count in test_alexnet_orig_hand_count
}
# Published approximate MACs with relative tolerance.
MACS_APPROX = {
    "resnet50": (4.09e9, 0.005),          # torchvision docs: 4.09 GFLOPS (their "FLOPS" are MACs)
    "resnet152": (11.51e9, 0.005),        # torchvision docs: 11.51 GFLOPS
    "vgg16": (15.47e9, 0.005),            # torchvision docs: 15.47 GFLOPS
    "alexnet": (0.71e9, 0.01),            # torchvision docs: 0.71 GFLOPS
    "mobilenet_v1": (569e6, 0.002),       # Howard et al. 2017, Table 8: 569 million mult-adds
    "shufflenet_v1": (140e6, 0.03),       # Zhang et al. 2018, Table 2: ShuffleNet 1x (g=3) 140 MFLOPs
    "ssdlite_mobilenet_v2": (0.8e9, 0.03),  # Sandler et al. 2018, Table 6: SSDLite 0.8B MAdds
}


def _flop_macs(model, shape) -> int:
    """FlopCounterMode MACs of a meta-device forward (shapes only, no arithmetic)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.to("meta")(torch.zeros(shape, device="meta"))
    return counter.get_total_flops() // 2


def test_names_complete():
    assert zoo.names() == ALL


def test_zoo_registry_is_torch_free():
    code = ("import sys; from hwsim import zoo; zoo.names(); zoo.input_shape('resnet18'); zoo.info('vgg16'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError, match="resnet18.*digits_cnn"):
        zoo.create("resnet19")
    with pytest.raises(UnknownNameError, match="unknown zoo model 'nope'"):
        zoo.input_shape("nope")


def test_unknown_option_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['depth_mult'\].*width_mult"):
        zoo.create("mobilenet_v2", depth_mult=2)
    with pytest.raises(ConfigError, match="width must be one of"):
        zoo.create("shufflenet_v2", width=0.7)
    with pytest.raises(ConfigError, match="zoo model 'vit_tiny': bad option value"):
        zoo.create("vit_tiny", heads=5)                  # 192 is not divisible by 5


@pytest.mark.parametrize("name,shape", [("resnet18", (2, 3, 224, 224)), ("alexnet_orig", (2, 3, 227, 227)),
                                        ("ssdlite_mobilenet_v2", (2, 3, 320, 320)), ("lstm_kws", (2, 49, 40)),
                                        ("digits_cnn", (2, 1, 8, 8))])
def test_input_shape(name, shape):
    assert zoo.input_shape(name, batch=2) == shape


def test_info_has_citation_and_published_numbers():
    meta = zoo.info("resnet18")
    assert "He et al." in meta["citation"] and meta["published"]["params"] == PARAMS["resnet18"]
    assert meta["input_shape"] == (1, 3, 224, 224)


def test_seeded_creation_is_deterministic():
    a, b, c = zoo.create("digits_cnn", seed=1), zoo.create("digits_cnn", seed=1), zoo.create("digits_cnn", seed=2)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["features.0.0.weight"], state_c["features.0.0.weight"])
    assert not a.training


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count(name):
    assert sum(p.numel() for p in zoo.create(name, device="meta").parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", sorted(set(MACS) | set(MACS_APPROX)))
def test_published_macs(name):
    macs = _flop_macs(zoo.create(name, device="meta"), zoo.input_shape(name))
    if name in MACS:
        assert macs == MACS[name]
    else:
        published, rel = MACS_APPROX[name]
        assert macs == pytest.approx(published, rel=rel)


def test_alexnet_orig_hand_count():
    # Krizhevsky et al. 2012, Fig. 2: 227x227 input; conv2/4/5 see half the channels (2 GPUs = 2 groups)
    convs = [(55, 96, 3 * 11 * 11), (27, 256, 48 * 25), (13, 384, 256 * 9), (13, 384, 192 * 9), (13, 256, 192 * 9)]
    conv_macs = sum(p * p * k * red for p, k, red in convs)
    fc_macs = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    params = sum(k * red + k for _, k, red in convs) + fc_macs + 4096 + 4096 + 1000
    assert conv_macs + fc_macs == MACS["alexnet_orig"] and params == PARAMS["alexnet_orig"]


@pytest.mark.parametrize("width,params", [(0.5, 1_366_792), (1.5, 3_503_624)])
def test_shufflenet_v2_widths(width, params):
    # torchvision shufflenet_v2_x0_5 / x1_5 model docs: 1,366,792 / 3,503,624 parameters
    assert sum(p.numel() for p in zoo.create("shufflenet_v2", device="meta", width=width).parameters()) == params


def test_mobilenet_width_multiplier_shrinks_macs():
    full = _flop_macs(zoo.create("mobilenet_v1", device="meta"), (1, 3, 224, 224))
    half = _flop_macs(zoo.create("mobilenet_v1", device="meta", width_mult=0.5), (1, 3, 224, 224))
    # Howard et al. 2017, Table 6: 1.0 -> 569M, 0.5 -> 149M mult-adds
    assert half == pytest.approx(149e6, rel=0.01) and full > 3.5 * half


def test_vit_and_lstm_forward_shapes():
    vit = zoo.create("vit_tiny", img_size=32, depth=2)
    assert vit(torch.zeros(2, 3, 32, 32)).shape == (2, 1000)
    lstm = zoo.create("lstm_kws")
    assert lstm(torch.zeros(zoo.input_shape("lstm_kws", batch=3))).shape == (3, 12)
    digits = zoo.create("digits_cnn")
    assert digits(torch.zeros(zoo.input_shape("digits_cnn", batch=4))).shape == (4, 10)


def test_ssdlite_outputs_anchor_predictions():
    model = zoo.create("ssdlite_mobilenet_v2", device="meta")
    scores, boxes = model(torch.zeros(1, 3, 320, 320, device="meta"))
    # maps 20x20x3 + (10x10 + 5x5 + 3x3 + 2x2 + 1x1) x 6 anchors = 1200 + 834
    assert scores.shape == (1, 2034, 91) and boxes.shape == (1, 2034, 4)
