"""Shared building blocks for the zoo networks (torch)."""

from __future__ import annotations

from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never going more than 10 % down (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, *, groups: int = 1,
            act: str | None = "relu", padding: int | None = None) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> optional activation ("relu", "relu6" or None)."""
    padding = (kernel - 1) // 2 if padding is None else padding
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act == "relu6":
        layers.append(nn.ReLU6(inplace=True))
    elif act is not None:
        raise ValueError(f"unknown activation {act!r}; valid: relu, relu6, None")
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> nn.Module:
    """torchvision-style init: Kaiming-normal convs, unit BN, small-normal linears, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
