"""Small networks for the demo and the Fashion-MNIST study (CPU-sized)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsCNN", "PlainCNN", "TinyMobileNetV2", "InvertedResidual"]


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class DigitsCNN(nn.Module):
    """Four convolutions and a classifier for 8x8 digits (about 60k weights).

    Example:
        >>> DigitsCNN()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(1, width), _conv_bn(width, width),
            _conv_bn(width, 2 * width, stride=2), _conv_bn(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class PlainCNN(nn.Module):
    """A plain VGG-style CNN for 28x28 inputs (five convolutions and a classifier).

    Example:
        >>> PlainCNN()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(1, w), nn.MaxPool2d(2), _conv_bn(w, w),
            _conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, skip if shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, k=1))
        layers += [_conv_bn(hidden, hidden, stride=stride, groups=hidden),
                   _conv_bn(hidden, cout, k=1, act=False)]
        self.conv = nn.Sequential(*layers)
        self.use_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_skip else y


class TinyMobileNetV2(nn.Module):
    """A MobileNetV2-style network for 28x28 inputs: inverted residuals with depthwise convs.

    Example:
        >>> TinyMobileNetV2()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    # (expand, out channels, blocks, first stride)
    CONFIG = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 1), (4, 48, 2, 2))

    def __init__(self, classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(in_channels, 16, stride=2)]
        cin = 16
        for t, c, n, s in self.CONFIG:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [_conv_bn(cin, 96, k=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(96, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
