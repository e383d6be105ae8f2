"""Zoo architectures re-stemmed for 1x32x32 digits (sklearn's 8x8 digits upsampled 4x), reduced width.

The body of each network is the zoo architecture's own (``hwsim.zoo.resnet.ResNet`` with BasicBlock x
[2, 2, 2, 2], ``hwsim.zoo.mobilenet`` inverted residuals from Table 2 of Sandler et al.); only the stem is
changed for small images, as the CIFAR variants of He et al. (CVPR 2016, Section 4.2) do: a 3x3 stride-1
first conv on one input channel and no max-pool, so a 32x32 image keeps 32x32 maps through the first
stage. Widths are reduced (``width``, ``width_mult``) so training on 2 CPU cores takes 1-3 minutes;
module names match the full-size models, so the shipped recipes' layer patterns select the same layers.
hwsim trains these on first use (``hwsim.data.trained_model``).
"""

from __future__ import annotations

from torch import nn

from hwsim.zoo._blocks import init_weights
from hwsim.zoo.mobilenet import MobileNetV2
from hwsim.zoo.resnet import BasicBlock, ResNet

DIGITS32_SIZE = 32


def digits_resnet18(*, width: int = 16, num_classes: int = 10) -> ResNet:
    """ResNet-18 (BasicBlock x [2, 2, 2, 2]) with a 3x3 stride-1 stem and no max-pool, stage widths
    ``width * (1, 2, 4, 8)`` (16: a quarter of ResNet-18's 64)."""
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, width=width, in_channels=1)
    model.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return init_weights(model)


def digits_mobilenet_v2(*, width_mult: float = 0.5, num_classes: int = 10) -> MobileNetV2:
    """MobileNet v2 (Table 2 of Sandler et al.) at ``width_mult`` with a stride-1 first conv on one channel."""
    model = MobileNetV2(width_mult=width_mult, num_classes=num_classes, dropout=0.0)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 1, 1, bias=False)
    return init_weights(model)
