"""SSDLite on a MobileNetV2 backbone (Sandler et al., CVPR 2018, section 6.2), 320x320 input.

Feature maps as in the paper / TF object-detection API: the expansion output of block 13
(576 ch at stride 16), the 1280-ch last layer (stride 32), and four extra 1x1 -> depthwise 3x3/s2 ->
1x1 blocks (512, 256, 256, 128 channels). Every box/class predictor is separable
(depthwise 3x3 + BN + ReLU6, then 1x1 conv). 3 anchors on the first map, 6 on the others.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hwsim.zoo._blocks import conv_bn, init_weights
from hwsim.zoo.mobilenet import v2_features

_EXTRAS = [(256, 512), (128, 256), (128, 256), (64, 128)]   # (bottleneck, out) channels


def _extra(c_in: int, mid: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(c_in, mid, 1, act="relu6"),
                         conv_bn(mid, mid, 3, 2, groups=mid, act="relu6"),
                         conv_bn(mid, c_out, 1, act="relu6"))


def _head(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(c_in, c_in, 3, groups=c_in, act="relu6"), nn.Conv2d(c_in, c_out, 1))


class SSDLiteMobileNetV2(nn.Module):
    def __init__(self, *, num_classes: int = 91, width_mult: float = 1.0) -> None:
        super().__init__()
        features, last = v2_features(width_mult)
        # split block 14 (index 14: the first stride-2 block of the 160-ch stage) after its expansion conv
        self.stem = features[:14]
        self.split_expand = features[14].conv[0]
        self.body = nn.Sequential(*features[14].conv[1:])
        self.tail = features[15:]
        mid_channels = self.split_expand[0].out_channels
        channels = [mid_channels, last]
        extras = []
        for mid, c_out in _EXTRAS:
            extras.append(_extra(channels[-1], mid, c_out))
            channels.append(c_out)
        self.extras = nn.ModuleList(extras)
        anchors = [3] + [6] * (len(channels) - 1)
        self.num_classes = num_classes
        self.cls_heads = nn.ModuleList(_head(c, a * num_classes) for c, a in zip(channels, anchors))
        self.box_heads = nn.ModuleList(_head(c, a * 4) for c, a in zip(channels, anchors))
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first = self.split_expand(self.stem(x))
        maps = [first, self.tail(self.body(first))]
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        batch = x.shape[0]
        scores = [h(m).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)
                  for h, m in zip(self.cls_heads, maps)]
        boxes = [h(m).permute(0, 2, 3, 1).reshape(batch, -1, 4) for h, m in zip(self.box_heads, maps)]
        return torch.cat(scores, 1), torch.cat(boxes, 1)


def ssdlite_mobilenet_v2(*, num_classes: int = 91, width_mult: float = 1.0) -> SSDLiteMobileNetV2:
    """SSDLite detector with a MobileNetV2 backbone (COCO: 90 classes + background)."""
    return SSDLiteMobileNetV2(num_classes=num_classes, width_mult=width_mult)
