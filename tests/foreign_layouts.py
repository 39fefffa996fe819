"""ResNets written the way *other* projects write them, for loader tests.

Every architecture below is plain PyTorch copied from the project named in its
docstring, keeping that project's module names, registration order, forward
order and tensor shapes, so that the state dicts (and the files on disk) look
exactly like the ones users of that project have.  Nothing here imports
``edgeresnet``: these are the inputs a loader has to cope with, not its output.

Each catalogue entry is a :class:`ForeignLayout`: a tiny configuration of one of
the models, how to build it (seeded, eval mode, non-default BatchNorm
statistics), the input it expects, what a loader should detect about it, and
how its users save it.  ``reload`` reads a saved file back the way that
project's own users do, to get reference logits.

Run ``python tests/foreign_layouts.py`` for a self-check of the catalogue.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------
# torchvision: torchvision/models/resnet.py (pytorch/vision)
# ---------------------------------------------------------------------------


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding"""
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision ``BasicBlock`` (pytorch/vision, torchvision/models/resnet.py), verbatim."""

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[Callable[..., nn.Module]] = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        # Both self.conv1 and self.downsample layers downsample the input when stride != 1
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out


class Bottleneck(nn.Module):
    """torchvision ``Bottleneck`` (pytorch/vision, torchvision/models/resnet.py), verbatim.

    ResNet v1.5: the stride sits on the 3x3 ``conv2``, not on the first 1x1.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[Callable[..., nn.Module]] = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        # Both self.conv2 and self.downsample layers downsample the input when stride != 1
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out


class ResNet(nn.Module):
    """torchvision ``ResNet`` (pytorch/vision, torchvision/models/resnet.py).

    Verbatim except for one test-size knob, ``base_planes``: torchvision
    hard-codes 64 (stem and layer1) doubling to 512; ``base_planes=64``
    reproduces it exactly, smaller values shrink every stage by the same factor.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Optional[list[bool]] = None,
        norm_layer: Optional[Callable[..., nn.Module]] = None,
        base_planes: int = 64,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer

        self.inplanes = base_planes
        self.dilation = 1
        if replace_stride_with_dilation is None:
            # each element in the tuple indicates if we should replace
            # the 2x2 stride with a dilated convolution instead
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                "replace_stride_with_dilation should be None "
                f"or a 3-element tuple, got {replace_stride_with_dilation}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base_planes, layers[0])
        self.layer2 = self._make_layer(
            block, base_planes * 2, layers[1], stride=2, dilate=replace_stride_with_dilation[0]
        )
        self.layer3 = self._make_layer(
            block, base_planes * 4, layers[2], stride=2, dilate=replace_stride_with_dilation[1]
        )
        self.layer4 = self._make_layer(
            block, base_planes * 8, layers[3], stride=2, dilate=replace_stride_with_dilation[2]
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base_planes * 8 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

        # Zero-initialize the last BN in each residual branch,
        # so that the residual branch starts with zeros, and each residual block behaves like an identity.
        # This improves the model by 0.2~0.3% according to https://arxiv.org/abs/1706.02677
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)  # type: ignore[arg-type]
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)  # type: ignore[arg-type]

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )

        layers = []
        layers.append(
            block(
                self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation, norm_layer
            )
        )
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    groups=self.groups,
                    base_width=self.base_width,
                    dilation=self.dilation,
                    norm_layer=norm_layer,
                )
            )

        return nn.Sequential(*layers)

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        # See note [TorchScript super()]
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)

        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_impl(x)


# ---------------------------------------------------------------------------
# A user's own code with torchvision's state-dict keys
# ---------------------------------------------------------------------------


class UserBasicBlock(nn.Module):
    """A user's hand-written block with torchvision ``BasicBlock`` keys.

    Written differently from torchvision: the shortcut is registered and
    computed first, activations are ``F.relu`` (no ``nn.ReLU`` modules) and
    the residual add is not in place.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + identity
        return F.relu(out)


class UserResNet(nn.Module):
    """A user's own ResNet module whose state dict has torchvision's keys.

    ``conv1``/``bn1``/``layer1..4``/``fc`` like torchvision, but pooling and
    activations are functional calls in ``forward``.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), num_classes: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_channels = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}", nn.Sequential(UserBasicBlock(in_channels, width, stride)))
            in_channels = width
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class CustomWidthResNet(nn.Module):
    """torchvision layout (torchvision ``BasicBlock``, ``downsample`` = conv1x1 + BN,
    ``fc`` head) with stage widths that are not ``width * 2**i``, as users build
    by copying torchvision's ``_make_layer``."""

    def __init__(
        self, widths: Sequence[int] = (24, 40, 80, 160), layers: Sequence[int] = (1, 1, 1, 1), num_classes: int = 7
    ) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(widths[0], layers[0])
        self.layer2 = self._make_layer(widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------
# timm: timm/models/resnet.py, timm/layers/squeeze_excite.py, timm/layers/eca.py
# (huggingface/pytorch-image-models)
# ---------------------------------------------------------------------------


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None, round_limit: float = 0.9) -> int:
    """timm/layers/helpers.py ``make_divisible``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    # Make sure that round down does not go down by more than 10%.
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SEModule(nn.Module):
    """timm ``SEModule`` (timm/layers/squeeze_excite.py) with its defaults.

    ``fc1``/``fc2`` are biased 1x1 convs; reduced channels are
    ``make_divisible(channels / 16, 8, round_limit=0)``, i.e. never below 8.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: Optional[int] = None,
        rd_divisor: int = 8,
        add_maxpool: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.add_maxpool = add_maxpool
        if not rd_channels:
            rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=bias)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = x.mean((2, 3), keepdim=True)
        if self.add_maxpool:
            # experimental codepath, may remove or change
            x_se = 0.5 * x_se + 0.5 * x.amax((2, 3), keepdim=True)
        x_se = self.fc1(x_se)
        x_se = self.act(self.bn(x_se))
        x_se = self.fc2(x_se)
        return x * self.gate(x_se)


class EcaModule(nn.Module):
    """timm ``EcaModule`` (timm/layers/eca.py), default (non-MLP) path.

    ``conv`` is an unbiased ``Conv1d(1, 1, k)`` with k chosen from the channel
    count: ``t = int(abs(log2(C) + 1) / 2)``, ``k = max(t if t odd else t + 1, 3)``.
    """

    def __init__(self, channels: Optional[int] = None, kernel_size: int = 3, gamma: float = 2, beta: float = 1) -> None:
        super().__init__()
        if channels is not None:
            t = int(abs(math.log(channels, 2) + beta) / gamma)
            kernel_size = max(t if t % 2 else t + 1, 3)
        assert kernel_size % 2 == 1
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=padding, bias=False)
        self.act = None
        self.conv2 = None
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)  # view for 1d conv
        y = self.conv(y)
        y = self.gate(y).view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


_TIMM_ATTN = {None: None, "se": SEModule, "eca": EcaModule}


def create_attn(attn_layer: Optional[str], channels: int) -> Optional[nn.Module]:
    """timm/layers/create_attn.py ``create_attn`` for the two kinds used here."""
    module_cls = _TIMM_ATTN[attn_layer]
    return module_cls(channels) if module_cls is not None else None


class TimmBasicBlock(nn.Module):
    """timm ``BasicBlock`` (timm/models/resnet.py): attention ``se`` after ``bn2``,
    before the residual add.  No drop-block, anti-aliasing or drop-path."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        cardinality: int = 1,
        base_width: int = 64,
        reduce_first: int = 1,
        attn_layer: Optional[str] = None,
    ) -> None:
        super().__init__()
        assert cardinality == 1, "BasicBlock only supports cardinality of 1"
        assert base_width == 64, "BasicBlock does not support changing base width"
        first_planes = planes // reduce_first
        outplanes = planes * self.expansion

        self.conv1 = nn.Conv2d(inplanes, first_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(first_planes)
        self.drop_block = nn.Identity()
        self.act1 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()

        self.conv2 = nn.Conv2d(first_planes, outplanes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outplanes)

        self.se = create_attn(attn_layer, outplanes)

        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.drop_path = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.drop_block(x)
        x = self.act1(x)
        x = self.aa(x)

        x = self.conv2(x)
        x = self.bn2(x)

        if self.se is not None:
            x = self.se(x)

        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act2(x)

        return x


class TimmBottleneck(nn.Module):
    """timm ``Bottleneck`` (timm/models/resnet.py): stride and groups on the 3x3
    ``conv2``; inner width ``floor(planes * base_width / 64) * cardinality``;
    attention ``se`` after ``bn3``."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        cardinality: int = 1,
        base_width: int = 64,
        reduce_first: int = 1,
        attn_layer: Optional[str] = None,
    ) -> None:
        super().__init__()
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        first_planes = width // reduce_first
        outplanes = planes * self.expansion

        self.conv1 = nn.Conv2d(inplanes, first_planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(first_planes)
        self.act1 = nn.ReLU(inplace=True)

        self.conv2 = nn.Conv2d(
            first_planes, width, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.drop_block = nn.Identity()
        self.act2 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()

        self.conv3 = nn.Conv2d(width, outplanes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)

        self.se = create_attn(attn_layer, outplanes)

        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.drop_path = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)

        x = self.conv2(x)
        x = self.bn2(x)
        x = self.drop_block(x)
        x = self.act2(x)
        x = self.aa(x)

        x = self.conv3(x)
        x = self.bn3(x)

        if self.se is not None:
            x = self.se(x)

        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act3(x)

        return x


def downsample_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """timm ``downsample_conv`` with ``down_kernel_size=1``: Sequential(conv1x1 s, BN)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, padding=0, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def downsample_avg(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """timm ``downsample_avg``: Sequential(AvgPool2d(2, s, ceil_mode, no pad count)
    or Identity when stride is 1, conv1x1, BN) -- so keys are ``downsample.1`` and
    ``downsample.2`` even in ``layer1``."""
    if stride == 1:
        pool: nn.Module = nn.Identity()
    else:
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return nn.Sequential(
        pool,
        nn.Conv2d(in_channels, out_channels, 1, stride=1, padding=0, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class SelectAdaptivePool2d(nn.Module):
    """timm ``SelectAdaptivePool2d`` for ``pool_type='avg', flatten=True`` (no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool_type = "avg"
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))


class TimmResNet(nn.Module):
    """timm ``ResNet`` (timm/models/resnet.py) without dilation, anti-aliasing,
    drop-block or drop-path.

    * ``stem_type=''``: a 7x7 ``conv1`` that is always 64 wide (timm ignores
      ``stem_width`` unless the stem is deep);
    * ``'deep'`` / ``'deep_tiered'``: ``conv1`` = Sequential(conv s2, BN, ReLU,
      conv, BN, ReLU, conv) then ``bn1``; output width ``2 * stem_width``;
    * ``avg_down``: ``downsample`` = Sequential(AvgPool2d | Identity, conv1x1, BN).
    """

    def __init__(
        self,
        block: type[TimmBasicBlock | TimmBottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        cardinality: int = 1,
        base_width: int = 64,
        stem_width: int = 64,
        stem_type: str = "",
        avg_down: bool = False,
        channels: Sequence[int] = (64, 128, 256, 512),
        block_args: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        block_args = block_args or dict()
        self.num_classes = num_classes
        self.drop_rate = 0.0

        # Stem
        deep_stem = "deep" in stem_type
        inplanes = stem_width * 2 if deep_stem else 64
        if deep_stem:
            stem_chs = (stem_width, stem_width)
            if "tiered" in stem_type:
                stem_chs = (3 * (stem_width // 4), stem_width)
            self.conv1 = nn.Sequential(
                *[
                    nn.Conv2d(in_chans, stem_chs[0], 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(stem_chs[0]),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(stem_chs[0], stem_chs[1], 3, stride=1, padding=1, bias=False),
                    nn.BatchNorm2d(stem_chs[1]),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(stem_chs[1], inplanes, 3, stride=1, padding=1, bias=False),
                ]
            )
        else:
            self.conv1 = nn.Conv2d(in_chans, inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        # Feature Blocks (make_blocks)
        for stage_idx, (planes, num_blocks) in enumerate(zip(channels, layers)):
            stride = 1 if stage_idx == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                make_down = downsample_avg if avg_down else downsample_conv
                downsample = make_down(inplanes, planes * block.expansion, stride)
            blocks = []
            for block_idx in range(num_blocks):
                blocks.append(
                    block(
                        inplanes,
                        planes,
                        stride if block_idx == 0 else 1,
                        downsample if block_idx == 0 else None,
                        cardinality=cardinality,
                        base_width=base_width,
                        **block_args,
                    )
                )
                inplanes = planes * block.expansion
            self.add_module(f"layer{stage_idx + 1}", nn.Sequential(*blocks))

        # Head (Pooling and Classifier)
        self.num_features = channels[-1] * block.expansion
        self.global_pool = SelectAdaptivePool2d()
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = self.forward_head(x)
        return x


# ---------------------------------------------------------------------------
# kuangliu/pytorch-cifar: models/resnet.py and models/preact_resnet.py
# ---------------------------------------------------------------------------


class CifarBasicBlock(nn.Module):
    """pytorch-cifar ``BasicBlock`` (kuangliu/pytorch-cifar, models/resnet.py), verbatim."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class CifarBottleneck(nn.Module):
    """pytorch-cifar ``Bottleneck`` (kuangliu/pytorch-cifar, models/resnet.py), verbatim."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * planes)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class CifarResNet(nn.Module):
    """pytorch-cifar ``ResNet`` (kuangliu/pytorch-cifar, models/resnet.py), verbatim:
    3x3 stride-1 stem, no max pool, ``F.avg_pool2d(out, 4)`` (so 32x32 input
    only), head named ``linear``.  The original hard-codes widths 64..512; the one
    test-size knob ``w`` (64 there) scales them, so that the suite exports it in seconds."""

    def __init__(
        self, block: type[CifarBasicBlock | CifarBottleneck], num_blocks: Sequence[int], num_classes: int = 10,
        w: int = 64,
    ) -> None:
        super().__init__()
        self.in_planes = w

        self.conv1 = nn.Conv2d(3, w, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layer1 = self._make_layer(block, w, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * w, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * w, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * w, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * w * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


class PreActBlock(nn.Module):
    """pytorch-cifar ``PreActBlock`` (kuangliu/pytorch-cifar, models/preact_resnet.py), verbatim.

    ``bn1`` normalises the block *input*; ``shortcut`` (a Sequential holding
    only a 1x1 conv, no BN) exists only when the shape changes and is applied to
    the pre-activated input, otherwise the raw input is added.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)

        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet(nn.Module):
    """pytorch-cifar ``PreActResNet`` (kuangliu/pytorch-cifar, models/preact_resnet.py), verbatim.

    The stem is a bare ``conv1`` (no BN, no ReLU) and there is no final
    BN/ReLU before ``F.avg_pool2d(out, 4)`` and ``linear``.
    """

    def __init__(self, block: type[PreActBlock], num_blocks: Sequence[int], num_classes: int = 10,
                 w: int = 64) -> None:  # w: the one test-size knob (64 in the original), as in CifarResNet
        super().__init__()
        self.in_planes = w

        self.conv1 = nn.Conv2d(3, w, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(block, w, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * w, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * w, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * w, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * w * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


# ---------------------------------------------------------------------------
# akamaster/pytorch_resnet_cifar10: resnet.py (Yerlan Idelbayev)
# ---------------------------------------------------------------------------


def _weights_init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear) or isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight)


class LambdaLayer(nn.Module):
    """akamaster ``LambdaLayer`` (akamaster/pytorch_resnet_cifar10, resnet.py)."""

    def __init__(self, lambd: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lambd(x)


class HeCifarBasicBlock(nn.Module):
    """akamaster ``BasicBlock`` (akamaster/pytorch_resnet_cifar10, resnet.py), verbatim.

    Option A shortcut: ``x[:, :, ::2, ::2]`` zero-padded with ``planes // 4``
    channels on each side; it has no parameters, so a downsampling block has
    the same keys as an identity block.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                """
                For CIFAR10 ResNet paper uses option A.
                """
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
                )
            elif option == "B":
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(self.expansion * planes),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class HeCifarResNet(nn.Module):
    """akamaster ``ResNet`` (akamaster/pytorch_resnet_cifar10, resnet.py), verbatim:
    He et al.'s CIFAR ResNet, 16/32/64 channels, three stages, head ``linear``."""

    def __init__(self, block: type[HeCifarBasicBlock], num_blocks: Sequence[int], num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 16

        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)

        self.apply(_weights_init)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion

        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ForeignLayout:
    """One foreign ResNet: how to build it, feed it, what to detect, how it is saved.

    ``expect`` keys: ``source`` ("torchvision", "timm", "pytorch-cifar",
    "huggingface", "he-cifar"), ``stem`` ("7x7", "3x3", "deep"), ``stem_pool``,
    ``block`` ("basic", "bottleneck"), ``preact``, ``shortcut`` ("projection",
    "avgpool-projection", "zero-pad"), ``attention`` (None, "se", "eca"),
    ``groups`` and ``in_chans``.  ``save(module, directory)`` returns the file
    (or, for Hugging Face, the folder) a loader should be pointed at.
    """

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    num_classes: int
    expect: dict[str, Any] = field(hash=False)
    save: Callable[[nn.Module, Path], Path]


def _seed_of(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _finish(model: nn.Module, name: str, input_shape: tuple[int, int, int]) -> nn.Module:
    """Make the module look trained, seeded by the entry name, and switch to eval.

    Every BatchNorm gets random affine parameters, then running statistics
    measured on one random batch (as training would leave them), so that the
    statistics are not 0/1 and the logits depend on the input instead of being
    swamped by biases, as they are with freshly initialised statistics.
    """
    generator = torch.Generator().manual_seed(_seed_of(name) + 1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for module in norms:
            n = module.num_features
            module.weight.copy_(torch.empty(n).uniform_(0.5, 1.5, generator=generator))
            module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration pass
        model.train()
        model(torch.randn(16, *input_shape, generator=generator))
        for module in norms:
            module.momentum = 0.1
            module.num_batches_tracked.fill_(78_200)
    return model.eval()


def _builder(
    name: str, make: Callable[[], nn.Module], input_shape: tuple[int, int, int]
) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(_seed_of(name))
        return _finish(make(), name, input_shape)

    build.__name__ = f"build_{name}"
    build.__qualname__ = build.__name__
    return build


# --- savers: the files each project's users have on disk --------------------


def save_state_dict_pth(module: nn.Module, directory: Path) -> Path:
    """torchvision / timm / custom code: ``torch.save(model.state_dict(), 'model.pth')``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.pth"
    torch.save(module.state_dict(), path)
    return path


def save_safetensors(module: nn.Module, directory: Path) -> Path:
    """timm (Hugging Face Hub style): ``safetensors.torch.save_file(state_dict, 'model.safetensors')``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return path


def _save_kuangliu(data_parallel: bool) -> Callable[[nn.Module, Path], Path]:
    def save(module: nn.Module, directory: Path) -> Path:
        """pytorch-cifar main.py: ``torch.save({'net': net.state_dict(), 'acc': acc,
        'epoch': epoch}, './checkpoint/ckpt.pth')``; ``net`` is a DataParallel on GPU."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = module.state_dict()
        if data_parallel:
            state = {"module." + k: v for k, v in state.items()}
        path = directory / "ckpt.pth"
        torch.save({"net": state, "acc": 93.1, "epoch": 199}, path)
        return path

    save.__name__ = "save_kuangliu_dataparallel" if data_parallel else "save_kuangliu"
    return save


def save_akamaster(module: nn.Module, directory: Path) -> Path:
    """akamaster trainer.py: ``save_checkpoint({'state_dict': model.state_dict(),
    'best_prec1': best_prec1}, ..., 'model.th')`` with ``model`` a DataParallel."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.th"
    state = {"module." + k: v for k, v in module.state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": 91.0}, path)
    return path


def save_hf_pretrained(module: nn.Module, directory: Path) -> Path:
    """transformers: ``model.save_pretrained('hf-model')`` (config.json + model.safetensors)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / "hf-model"
    module.save_pretrained(folder)  # type: ignore[operator]
    return folder


# --- builders ---------------------------------------------------------------


def _tv_gray() -> nn.Module:
    model = ResNet(BasicBlock, [1, 1, 1, 1], base_planes=16)
    model.conv1 = nn.Conv2d(1, 16, 7, 2, 3, bias=False)  # the user's grayscale edit
    model.fc = nn.Linear(model.fc.in_features, 3)
    return model


def _tv_3x3_stem() -> nn.Module:
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10, base_planes=16)
    model.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)  # the CIFAR / Tiny-ImageNet edit
    model.maxpool = nn.Identity()
    return model


def _hf(layer_type: str, hidden_sizes: list[int]) -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    labels = ["cat", "dog", "bird", "horse", "ship"]
    config = ResNetConfig(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=hidden_sizes,
        depths=[1, 1, 1, 1],
        layer_type=layer_type,
        hidden_act="relu",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return ResNetForImageClassification(config)


def _expect(
    source: str,
    stem: str,
    stem_pool: bool,
    block: str,
    shortcut: str = "projection",
    preact: bool = False,
    attention: Optional[str] = None,
    groups: int = 1,
    in_chans: int = 3,
) -> dict[str, Any]:
    return dict(
        source=source,
        stem=stem,
        stem_pool=stem_pool,
        block=block,
        preact=preact,
        shortcut=shortcut,
        attention=attention,
        groups=groups,
        in_chans=in_chans,
    )


_IMAGENET = (3, 64, 64)
_CIFAR = (3, 32, 32)


def _entry(name, make, input_shape, num_classes, expect, save) -> ForeignLayout:
    return ForeignLayout(name, _builder(name, make, input_shape), input_shape, num_classes, expect, save)


CATALOGUE: tuple[ForeignLayout, ...] = (
    # -- torchvision ---------------------------------------------------------
    _entry(
        "tv_wide_resnet",
        lambda: ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10, width_per_group=64 * 2, base_planes=8),
        _IMAGENET, 10,
        _expect("torchvision", "7x7", True, "bottleneck"),
        save_state_dict_pth,
    ),
    _entry(
        "tv_resnext",
        lambda: ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10, groups=4, width_per_group=4, base_planes=16),
        _IMAGENET, 10,
        _expect("torchvision", "7x7", True, "bottleneck", groups=4),
        save_state_dict_pth,
    ),
    _entry(
        "tv_gray",
        _tv_gray,
        (1, 64, 64), 3,
        _expect("torchvision", "7x7", True, "basic", in_chans=1),
        save_state_dict_pth,
    ),
    _entry(
        "tv_3x3_stem",
        _tv_3x3_stem,
        _CIFAR, 10,
        _expect("torchvision", "3x3", False, "basic"),
        save_state_dict_pth,
    ),
    _entry(
        "tv_user_module",
        lambda: UserResNet((16, 32, 64, 128), num_classes=6),
        _IMAGENET, 6,
        _expect("torchvision", "7x7", True, "basic"),
        save_state_dict_pth,
    ),
    _entry(
        "custom_widths",
        lambda: CustomWidthResNet((24, 40, 80, 160), num_classes=7),
        _IMAGENET, 7,
        _expect("torchvision", "7x7", True, "basic"),
        save_state_dict_pth,
    ),
    # -- timm ----------------------------------------------------------------
    _entry(
        "timm_resnet50d",  # resnet50d: stem_width=32, stem_type='deep', avg_down=True
        lambda: TimmResNet(
            TimmBottleneck, [1, 1, 1, 1], num_classes=10, stem_width=8, stem_type="deep", avg_down=True,
            channels=(8, 16, 32, 64),
        ),
        _IMAGENET, 10,
        _expect("timm", "deep", True, "bottleneck", shortcut="avgpool-projection"),
        save_state_dict_pth,
    ),
    _entry(
        "timm_seresnet18",  # seresnet18: BasicBlock, block_args=dict(attn_layer='se')
        lambda: TimmResNet(
            TimmBasicBlock, [1, 1, 1, 1], num_classes=10, channels=(8, 16, 32, 64),
            block_args=dict(attn_layer="se"),
        ),
        _IMAGENET, 10,
        _expect("timm", "7x7", True, "basic", attention="se"),
        save_safetensors,
    ),
    _entry(
        "timm_ecaresnet",  # ecaresnet50d: deep stem, avg_down, attn_layer='eca'
        lambda: TimmResNet(
            TimmBottleneck, [1, 1, 1, 1], num_classes=10, stem_width=8, stem_type="deep", avg_down=True,
            channels=(8, 16, 32, 64), block_args=dict(attn_layer="eca"),
        ),
        _IMAGENET, 10,
        _expect("timm", "deep", True, "bottleneck", shortcut="avgpool-projection", attention="eca"),
        save_state_dict_pth,
    ),
    _entry(
        "timm_seresnext",  # seresnext26d_32x4d: cardinality=32, base_width=4, deep stem, avg_down, se
        lambda: TimmResNet(
            TimmBottleneck, [1, 1, 1, 1], num_classes=10, cardinality=4, base_width=16, stem_width=8,
            stem_type="deep", avg_down=True, channels=(8, 16, 32, 64), block_args=dict(attn_layer="se"),
        ),
        _IMAGENET, 10,
        _expect("timm", "deep", True, "bottleneck", shortcut="avgpool-projection", attention="se", groups=4),
        save_state_dict_pth,
    ),
    _entry(
        "timm_resnet_d_bottleneck",  # ResNet-D with timm's `channels` argument: non-doubling stage widths
        lambda: TimmResNet(
            TimmBottleneck, [1, 1, 1, 1], num_classes=10, stem_width=8, stem_type="deep", avg_down=True,
            channels=(8, 12, 20, 40),
        ),
        _IMAGENET, 10,
        _expect("timm", "deep", True, "bottleneck", shortcut="avgpool-projection"),
        save_safetensors,
    ),
    # -- kuangliu/pytorch-cifar ----------------------------------------------
    _entry(
        "kuangliu_resnet18",
        lambda: CifarResNet(CifarBasicBlock, [1, 1, 1, 1], w=16),
        _CIFAR, 10,
        _expect("pytorch-cifar", "3x3", False, "basic"),
        _save_kuangliu(data_parallel=True),
    ),
    _entry(
        "kuangliu_preact_resnet18",
        lambda: PreActResNet(PreActBlock, [1, 1, 1, 1], w=16),
        _CIFAR, 10,
        _expect("pytorch-cifar", "3x3", False, "basic", preact=True),
        _save_kuangliu(data_parallel=True),
    ),
    _entry(
        "kuangliu_resnet50",
        lambda: CifarResNet(CifarBottleneck, [1, 1, 1, 1], w=8),
        _CIFAR, 10,
        _expect("pytorch-cifar", "3x3", False, "bottleneck"),
        _save_kuangliu(data_parallel=False),
    ),
    # -- Hugging Face transformers -------------------------------------------
    _entry(
        "hf_resnet_basic",
        lambda: _hf("basic", [8, 16, 32, 64]),
        _IMAGENET, 5,
        _expect("huggingface", "7x7", True, "basic"),
        save_hf_pretrained,
    ),
    _entry(
        "hf_resnet_bottleneck",
        lambda: _hf("bottleneck", [16, 32, 64, 128]),
        _IMAGENET, 5,
        _expect("huggingface", "7x7", True, "bottleneck"),
        save_hf_pretrained,
    ),
    # -- akamaster/pytorch_resnet_cifar10 ------------------------------------
    _entry(
        "akamaster_resnet20",
        lambda: HeCifarResNet(HeCifarBasicBlock, [3, 3, 3]),
        _CIFAR, 10,
        _expect("he-cifar", "3x3", False, "basic", shortcut="zero-pad"),
        save_akamaster,
    ),
)


def by_name(name: str) -> ForeignLayout:
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    raise KeyError(f"no foreign layout named {name!r}; known: {', '.join(e.name for e in CATALOGUE)}")


# --- reading the files back the way each project's users do -----------------


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The bare state dict inside any of the files written above (``module.``
    prefixes removed, ``net`` / ``state_dict`` wrappers unwrapped)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("net", "state_dict"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def reload(entry: ForeignLayout, path: Path) -> nn.Module:
    """Load a saved entry with its own project's code, for reference outputs.

    The fresh module is zeroed first, so equal logits prove the file was read.
    """
    if entry.expect["source"] == "huggingface":
        from transformers import ResNetForImageClassification

        return ResNetForImageClassification.from_pretrained(str(path)).eval()
    fresh = entry.build()
    with torch.no_grad():
        for tensor in fresh.state_dict().values():
            if tensor.is_floating_point():
                tensor.zero_()
    fresh.load_state_dict(read_state_dict(path), strict=True)
    return fresh.eval()


def logits_of(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Plain tensor logits (Hugging Face models return an output object)."""
    out = module(x)
    return out.logits if hasattr(out, "logits") else out


if __name__ == "__main__":
    import tempfile

    torch.set_num_threads(1)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    names = [entry.name for entry in CATALOGUE]
    assert len(names) == len(set(names)), "duplicate names"
    with tempfile.TemporaryDirectory() as tmp:
        for entry in CATALOGUE:
            model = entry.build()
            assert not model.training
            x = torch.randn(2, *entry.input_shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                y = logits_of(model, x)
            assert y.shape == (2, entry.num_classes), (entry.name, tuple(y.shape))
            assert torch.isfinite(y).all(), entry.name
            path = entry.save(model, Path(tmp) / entry.name)
            with torch.no_grad():
                y2 = logits_of(reload(entry, path), x)
            assert torch.equal(y, y2), (entry.name, (y - y2).abs().max().item())
            keys = list(model.state_dict())
            params = sum(p.numel() for p in model.parameters())
            print(f"ok  {entry.name:26s} {params:>9,d} params  {path.name:18s} {keys[0]} ... {keys[-1]}")
    print(f"{len(CATALOGUE)} entries passed")
