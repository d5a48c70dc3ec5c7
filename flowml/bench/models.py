"""Models the benchmarks run: a fast style-transfer network and ResNet-50 (random weights:
speed does not depend on them)."""

from __future__ import annotations

import torch
from torch import nn


class _ConvIN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride),
                                   nn.InstanceNorm2d(cout, affine=True)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_ConvIN(c, c, 3), _ConvIN(c, c, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _ConvIN(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class StyleNet(nn.Module):
    """Johnson et al.'s fast style-transfer network (the one PyTorch's examples ship):
    (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            _ConvIN(3, 32, 9), _ConvIN(32, 64, 3, 2), _ConvIN(64, 128, 3, 2),
            *[_Residual(128) for _ in range(5)],
            _Up(128, 64), _Up(64, 32), nn.ReflectionPad2d(4), nn.Conv2d(32, 3, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def resnet50() -> nn.Module:
    """torchvision's ResNet-50 (random weights)."""
    import torchvision

    return torchvision.models.resnet50(weights=None)
