"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al., CVPR 2018), with width multipliers.

v2 matches torchvision's ``mobilenet_v2`` layer for layer; v1 follows the paper's Table 1 with
BatchNorm after every conv (as timm's ``mobilenetv1_100``).
"""

from __future__ import annotations

from torch import Tensor, nn

from hwsim.zoo._blocks import conv_bn, init_weights, make_divisible

# (out_channels, stride) of the 13 depthwise-separable blocks, paper Table 1
_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

# (expansion t, channels c, repeats n, stride s), paper Table 2
_V2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV1(nn.Module):
    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        c_in = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn(3, c_in, 3, 2)]
        for c_out, stride in _V1_BLOCKS:
            c_out = make_divisible(c_out * width_mult)
            layers.append(nn.Sequential(conv_bn(c_in, c_in, 3, stride, groups=c_in), conv_bn(c_in, c_out, 1)))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(c_in * expand_ratio))
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn(c_in, hidden, 1, act="relu6"))
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                   conv_bn(hidden, c_out, 1, act=None)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def v2_features(width_mult: float = 1.0) -> tuple[nn.Sequential, int]:
    """The MobileNetV2 feature extractor (ending with the 1x1 conv to 1280) and its channel count."""
    c_in = make_divisible(32 * width_mult)
    last = make_divisible(1280 * max(1.0, width_mult))
    layers: list[nn.Module] = [conv_bn(3, c_in, 3, 2, act="relu6")]
    for t, c, n, s in _V2_SETTINGS:
        c_out = make_divisible(c * width_mult)
        for i in range(n):
            layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
            c_in = c_out
    layers.append(conv_bn(c_in, last, 1, act="relu6"))
    return nn.Sequential(*layers), last


class MobileNetV2(nn.Module):
    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self.features, last = v2_features(width_mult)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(x.flatten(1))


def mobilenet_v1(*, width_mult: float = 1.0, num_classes: int = 1000) -> MobileNetV1:
    """MobileNet v1 with width multiplier ``width_mult`` (alpha in the paper)."""
    return MobileNetV1(width_mult=width_mult, num_classes=num_classes)


def mobilenet_v2(*, width_mult: float = 1.0, num_classes: int = 1000) -> MobileNetV2:
    """MobileNet v2 with width multiplier ``width_mult``."""
    return MobileNetV2(width_mult=width_mult, num_classes=num_classes)
