"""CIFAR ResNets of He et al. 2016 (section 4.2): ResNet-20/32/44/56/110.

A 3x3 stem, three stages of n two-conv blocks at ``width``, 2x and 4x channels (16, 32,
64 by default), global average pool and a ``linear`` head: 6n+2 layers. Names and the
default "A" shortcut follow Yerlan Idelbayev's widely used implementation, so its
published checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.models.registry import register

Shortcut = Literal["A", "B"]


class PadShortcut(nn.Module):
    """Option A: a parameter-free identity that subsamples and zero-pads channels.

    Input channel ``c`` lands on output channel ``before + c``; the rest are zeros.
    Idelbayev wrote this as a lambda; a named module keeps ``before`` and ``after``
    visible to pruning and keeps the state dict free of shortcut keys.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, before={self.before}, after={self.after}"


class CifarBlock(nn.Module):
    """Two 3x3 convs; the shortcut changes shape only at the first block of a stage."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: Shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = PadShortcut(in_planes, planes, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)


class CifarResNet(nn.Module):
    def __init__(
        self,
        layers: list[int] | tuple[int, ...],
        num_classes: int = 10,
        shortcut: Shortcut = "A",
        width: int = 16,
    ):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ArchitectureError(
                f"unknown shortcut {shortcut!r}",
                hint="use 'A' (zero-padding identity) or 'B' (1x1 conv projection)",
            )
        if num_classes < 1 or width < 1:
            raise ArchitectureError(f"num_classes and width must be at least 1, got {num_classes} and {width}")
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.in_planes = width
        self.layer1 = self._make_layer(width, layers[0], 1, shortcut)
        self.layer2 = self._make_layer(width * 2, layers[1], 2, shortcut)
        self.layer3 = self._make_layer(width * 4, layers[2], 2, shortcut)
        # Adaptive pooling rather than Idelbayev's avg_pool2d(x, x.size(3)): the same
        # result, without a size read at run time that ONNX would have to trace.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(width * 4, num_classes)

        # Idelbayev's init: Kaiming normal (fan_in) for convs and the head.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int, shortcut: Shortcut) -> nn.Sequential:
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            layers.append(CifarBlock(self.in_planes, planes, block_stride, shortcut))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.avgpool(x).flatten(1)
        return self.linear(x)


@register("cifar")
def resnet8(*, num_classes: int = 10, shortcut: Shortcut = "A", width: int = 16) -> CifarResNet:
    """Not in the paper: one block per stage, for fast tests of every stage."""
    return CifarResNet([1, 1, 1], num_classes, shortcut, width)


@register("cifar")
def resnet20(*, num_classes: int = 10, shortcut: Shortcut = "A", width: int = 16) -> CifarResNet:
    return CifarResNet([3, 3, 3], num_classes, shortcut, width)


@register("cifar")
def resnet32(*, num_classes: int = 10, shortcut: Shortcut = "A", width: int = 16) -> CifarResNet:
    return CifarResNet([5, 5, 5], num_classes, shortcut, width)


@register("cifar")
def resnet44(*, num_classes: int = 10, shortcut: Shortcut = "A", width: int = 16) -> CifarResNet:
    return CifarResNet([7, 7, 7], num_classes, shortcut, width)


@register("cifar")
def resnet56(*, num_classes: int = 10, shortcut: Shortcut = "A", width: int = 16) -> CifarResNet:
    return CifarResNet([9, 9, 9], num_classes, shortcut, width)


@register("cifar")
def resnet110(*, num_classes: int = 10, shortcut: Shortcut = "A", width: int = 16) -> CifarResNet:
    return CifarResNet([18, 18, 18], num_classes, shortcut, width)
