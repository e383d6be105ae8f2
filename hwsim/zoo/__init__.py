"""The model zoo: our own definitions of common edge networks (no torchvision, no weight downloads).

``names()``, ``input_shape()`` and ``info()`` are torch-free; ``create()`` imports torch lazily and
returns a randomly initialised (seeded) model in eval mode.

>>> from hwsim import zoo
>>> zoo.input_shape("resnet18", batch=2)
(2, 3, 224, 224)
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from hwsim.errors import ConfigError, UnknownNameError

__all__ = ["names", "create", "input_shape", "info"]


@dataclass(frozen=True)
class _Entry:
    module: str                                      # hwsim.zoo.<module>
    builder: str                                     # builder function in that module
    shape: Callable[[dict[str, Any]], tuple[int, ...]]  # options -> input shape without batch
    description: str
    citation: str
    published: dict[str, Any] = field(default_factory=dict)


def _image(size: int = 224, channels: int = 3) -> Callable[[dict[str, Any]], tuple[int, ...]]:
    return lambda options: (channels, size, size)


_TV = "torchvision 0.28.0 (measured in shared/research/frontend.md: params and FlopCounterMode MACs)"

_REGISTRY: dict[str, _Entry] = {
    "resnet18": _Entry("resnet", "resnet18", _image(), "ResNet-18 (BasicBlock x [2,2,2,2])",
                       "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
                       {"params": 11_689_512, "macs": 1_814_073_344, "source": _TV}),
    "resnet50": _Entry("resnet", "resnet50", _image(), "ResNet-50 v1.5 (Bottleneck x [3,4,6,3])",
                       "He et al., CVPR 2016",
                       {"params": 25_557_032, "macs_approx": 4.09e9, "source": "torchvision model docs"}),
    "resnet152": _Entry("resnet", "resnet152", _image(), "ResNet-152 v1.5 (Bottleneck x [3,8,36,3])",
                        "He et al., CVPR 2016",
                        {"params": 60_192_808, "macs_approx": 11.51e9,
                         "source": "torchvision model docs (60.2M params, 11.51 GFLOPS = multiply-adds)"}),
    "mobilenet_v1": _Entry("mobilenet", "mobilenet_v1", _image(), "MobileNet v1 (width multiplier width_mult)",
                           "Howard et al., MobileNets, arXiv:1704.04861, 2017",
                           {"params": 4_231_976, "macs_approx": 569e6,
                            "source": "timm mobilenetv1_100 params; paper Table 8 (569M mult-adds)"}),
    "mobilenet_v2": _Entry("mobilenet", "mobilenet_v2", _image(), "MobileNet v2 (width multiplier width_mult)",
                           "Sandler et al., MobileNetV2, CVPR 2018",
                           {"params": 3_504_872, "macs": 300_774_272, "source": _TV}),
    "shufflenet_v1": _Entry("shufflenet", "shufflenet_v1", _image(), "ShuffleNet v1, g=3, 1.0x",
                            "Zhang et al., ShuffleNet, CVPR 2018",
                            {"macs_approx": 140e6, "source": "paper Table 2 (ShuffleNet 1x, g=3: 140 MFLOPs)"}),
    "shufflenet_v2": _Entry("shufflenet", "shufflenet_v2", _image(), "ShuffleNet v2 (width 0.5/1.0/1.5/2.0)",
                            "Ma et al., ShuffleNet V2, ECCV 2018",
                            {"params": 2_278_604, "macs": 144_907_992, "source": _TV}),
    "squeezenet1_1": _Entry("classic", "squeezenet1_1", _image(), "SqueezeNet 1.1",
                            "Iandola et al., SqueezeNet, arXiv:1602.07360, 2016 (v1.1 from the authors' repo)",
                            {"params": 1_235_496, "macs": 349_151_936, "source": _TV}),
    "alexnet": _Entry("classic", "alexnet", _image(), "AlexNet, torchvision single-tower variant (64-192-384-256-256)",
                      "Krizhevsky, One weird trick for parallelizing CNNs, arXiv:1404.5997, 2014",
                      {"params": 61_100_840, "source": "torchvision model docs"}),
    "alexnet_orig": _Entry("classic", "alexnet_orig", _image(227),
                           "AlexNet as published: 96-256-384-384-256, two groups, LRN, 227x227 input",
                           "Krizhevsky, Sutskever, Hinton, ImageNet Classification with Deep CNNs, NIPS 2012",
                           {"params": 60_965_224, "macs": 724_406_816,
                            "source": "Caffe bvlc_alexnet (hand count in tests/test_zoo.py)"}),
    "vgg16": _Entry("classic", "vgg16", _image(), "VGG-16 (configuration D)",
                    "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015",
                    {"params": 138_357_544, "macs_approx": 15.47e9, "source": "torchvision model docs"}),
    "ssdlite_mobilenet_v2": _Entry("ssdlite", "ssdlite_mobilenet_v2", _image(320),
                                   "SSDLite detector on MobileNetV2, 320x320, 91 COCO classes",
                                   "Sandler et al., MobileNetV2, CVPR 2018, Section 6.2",
                                   {"params_approx": 4.3e6, "macs_approx": 0.8e9,
                                    "source": "paper Table 6 (SSDLite: 4.3M params, 0.8B MAdds)"}),
    "vit_tiny": _Entry("transformer", "vit_tiny", lambda o: (3, o.get("img_size", 224), o.get("img_size", 224)),
                       "DeiT-tiny-like ViT (patch 16, dim 192, depth 12, 3 heads)",
                       "Touvron et al., Training data-efficient image transformers, ICML 2021",
                       {"params": 5_717_416, "macs": 1_253_683_200,
                        "source": "timm deit_tiny_patch16_224 params; MACs by closed form (tests)"}),
    "lstm_kws": _Entry("small", "lstm_kws", lambda o: (49, o.get("features", 40)),
                       "2-layer 256-hidden LSTM keyword spotter; input (batch, 49 frames, 40 features)",
                       "Zhang et al., Hello Edge: Keyword Spotting on Microcontrollers, arXiv:1711.07128, 2017",
                       {"params": 834_572, "source": "closed form 4H(F+H+2) per layer + FC"}),
    "digits_cnn": _Entry("small", "digits_cnn", _image(8, 1), "Tiny conv-BN-ReLU CNN for 8x8 digits, 10 classes",
                         "hwsim (for sklearn load_digits)", {}),
    "digits_resnet18": _Entry("digits", "digits_resnet18", _image(32, 1),
                              "ResNet-18 layers, 3x3 stride-1 stem, no max-pool, width 16 (1/4), 32x32 digits; "
                              "trained on first use (1-3 min, held-out top-1 0.991)",
                              "He et al., CVPR 2016 (CIFAR-style stem, Section 4.2)", {}),
    "digits_mobilenet_v2": _Entry("digits", "digits_mobilenet_v2", _image(32, 1),
                                  "MobileNet v2 layers, stride-1 stem, width 0.5, 32x32 digits; trained on "
                                  "first use (1-3 min, held-out top-1 0.962)",
                                  "Sandler et al., CVPR 2018 (stride-1 stem for 32x32)", {}),
}


def names() -> list[str]:
    """All zoo model names."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown zoo model {name!r}; valid: {', '.join(names())}") from None


def input_shape(name: str, batch: int = 1, **options: Any) -> tuple[int, ...]:
    """Default input shape of zoo model ``name`` including the batch dimension."""
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    return (int(batch), *_entry(name).shape(options))


def info(name: str) -> dict[str, Any]:
    """Description, citation, default input shape and published params/MACs of ``name``."""
    entry = _entry(name)
    return {"name": name, "description": entry.description, "citation": entry.citation,
            "input_shape": input_shape(name), "published": dict(entry.published)}


def _builder(name: str) -> Callable[..., Any]:
    entry = _entry(name)
    return getattr(importlib.import_module(f"hwsim.zoo.{entry.module}"), entry.builder)


def options(name: str) -> dict[str, Any]:
    """Keyword options accepted by ``create(name, ...)`` with their defaults (imports torch)."""
    params = inspect.signature(_builder(name)).parameters
    return {key: p.default for key, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def create(name: str, *, seed: int = 0, device: str | None = None, **options_: Any):
    """Build zoo model ``name`` with seeded random weights, in eval mode.

    ``device="meta"`` builds it without weight memory (shapes only). Unknown options raise ConfigError.
    """
    import torch

    valid = options(name)
    if unknown := sorted(options_.keys() - valid.keys()):
        raise ConfigError(f"unknown option(s) {unknown} for zoo model {name!r}; valid: {sorted(valid)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device or "cpu"):
            try:
                model = _builder(name)(**options_)
            except (ValueError, TypeError) as err:
                raise ConfigError(f"zoo model {name!r}: bad option value ({err})") from None
    return model.eval()
