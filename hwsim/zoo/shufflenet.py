"""ShuffleNet v1 (Zhang et al., CVPR 2018; groups g) and v2 (Ma et al., ECCV 2018; torchvision layout).

v1 shuffles with the explicit view -> transpose -> view pattern (as most user code does);
v2 uses ``torch.channel_shuffle`` (one ``aten.channel_shuffle`` node). Both lower to SHUFFLE.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hwsim.zoo._blocks import conv_bn, init_weights

# stage output channels for 1.0x, v1 paper Table 1 (g -> channels)
_V1_CHANNELS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
# v2 stage output channels by width, torchvision / paper Table 5
_V2_CHANNELS = {0.5: [24, 48, 96, 192, 1024], 1.0: [24, 116, 232, 464, 1024],
                1.5: [24, 176, 352, 704, 1024], 2.0: [24, 244, 488, 976, 2048]}


def shuffle_view(x: Tensor, groups: int) -> Tensor:
    """Channel shuffle written as view -> transpose -> view."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2).contiguous()
    return x.view(batch, channels, height, width)


class ShuffleV1Unit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, groups: int, first_groups: int) -> None:
        super().__init__()
        self.stride, self.groups = stride, groups
        branch_out = c_out - c_in if stride == 2 else c_out
        mid = c_out // 4
        self.gconv1 = conv_bn(c_in, mid, 1, groups=first_groups)
        self.dwconv = conv_bn(mid, mid, 3, stride, groups=mid, act=None)
        self.gconv2 = conv_bn(mid, branch_out, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.gconv1(x)
        if self.groups > 1:
            out = shuffle_view(out, self.groups)
        out = self.gconv2(self.dwconv(out))
        if self.shortcut is None:
            return self.relu(x + out)
        return self.relu(torch.cat([self.shortcut(x), out], 1))


class ShuffleNetV1(nn.Module):
    def __init__(self, *, groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        if groups not in _V1_CHANNELS:
            raise ValueError(f"ShuffleNet v1 groups must be one of {sorted(_V1_CHANNELS)}, got {groups}")
        base = int(_V1_CHANNELS[groups] * width_mult) // (4 * groups) * (4 * groups)
        self.conv1 = conv_bn(3, 24, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in, stages = 24, []
        for index, repeats in enumerate([4, 8, 4]):
            c_out = base * 2 ** index
            units = [ShuffleV1Unit(c_in if j == 0 else c_out, c_out, 2 if j == 0 else 1, groups,
                                   1 if (index == 0 and j == 0) else groups) for j in range(repeats)]
            stages.append(nn.Sequential(*units))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.maxpool(self.conv1(x)))
        return self.fc(x.mean([2, 3]))


class ShuffleV2Unit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = c_out // 2
        if stride > 1:
            self.branch1 = nn.Sequential(*conv_bn(c_in, c_in, 3, stride, groups=c_in, act=None),
                                         *conv_bn(c_in, half, 1))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(*conv_bn(c_in if stride > 1 else half, half, 1),
                                     *conv_bn(half, half, 3, stride, groups=half, act=None),
                                     *conv_bn(half, half, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return torch.channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, *, width: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        if width not in _V2_CHANNELS:
            raise ValueError(f"ShuffleNet v2 width must be one of {sorted(_V2_CHANNELS)}, got {width}")
        channels = _V2_CHANNELS[width]
        self.conv1 = conv_bn(3, channels[0], 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = channels[0]
        for index, repeats in enumerate([4, 8, 4]):
            c_out = channels[index + 1]
            units = [ShuffleV2Unit(c_in if j == 0 else c_out, c_out, 2 if j == 0 else 1) for j in range(repeats)]
            setattr(self, f"stage{index + 2}", nn.Sequential(*units))
            c_in = c_out
        self.conv5 = conv_bn(c_in, channels[-1], 1)
        self.fc = nn.Linear(channels[-1], num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))


def shufflenet_v1(*, groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000) -> ShuffleNetV1:
    """ShuffleNet v1 (default g=3, 1.0x: 240/480/960 stage channels)."""
    return ShuffleNetV1(groups=groups, width_mult=width_mult, num_classes=num_classes)


def shufflenet_v2(*, width: float = 1.0, num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNet v2 at width 0.5, 1.0, 1.5 or 2.0."""
    return ShuffleNetV2(width=width, num_classes=num_classes)
