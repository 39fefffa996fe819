"""One ResNet class for every layout the zoo's two classes do not cover.

Written after timm's ``resnet.py``: one network whose stem (7x7 or 3x3 conv, or the deep
stem of three 3x3 convs; max pool or not), block (basic or bottleneck, post- or
pre-activation), projection shortcut (strided 1x1 conv, or average pool then 1x1 conv:
ResNet-D), attention gate (squeeze-excitation, ECA), input channels and stage widths are
arguments. Module names follow torchvision's and timm's (``conv1``, ``bn1``,
``layerN.M.convK``, ``downsample``, ``se``, ``fc``), so their weights load unchanged and
the other layouts (Hugging Face, pytorch-cifar) are renamed into them on loading
(``edgeresnet.intake``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError


@dataclass(frozen=True)
class Layout:
    """The structure of a :class:`GeneralResNet`; every field is read from the weights."""

    layers: tuple[int, ...]  # blocks per stage
    planes: tuple[int, ...]  # per stage: a basic block's width, a bottleneck's output / 4
    bottleneck: bool = False
    groups: int = 1  # of the bottleneck's 3x3 conv
    width_per_group: int = 64  # bottleneck inner width = int(planes * width_per_group / 64) * groups
    in_chans: int = 3
    stem: str = "7x7"  # "7x7" (stride 2), "3x3" (stride 1) or "deep" (three 3x3 convs, stride 2)
    stem_widths: tuple[int, ...] = ()  # deep stem: outputs of its first two convs
    stem_width: int = 64
    stem_pool: bool = True
    preact: bool = False  # batch norm and ReLU before each conv (He et al. 2016b)
    down: str = "conv"  # projection shortcut: "conv" (1x1, strided) or "avg" (avg pool, then 1x1)
    attention: str = ""  # "", "se" (squeeze-excitation) or "eca"
    attention_sizes: tuple[int, ...] = ()  # per stage: SE reduced channels, or ECA kernel size
    stride_in_1x1: bool = False  # a bottleneck strides in its first 1x1 conv (v1), not its 3x3 (v1.5)
    first_stride: int = 1  # stride of the first stage (Hugging Face's downsample_in_first_stage: 2)
    num_classes: int = 1000

    def __post_init__(self) -> None:
        if not self.layers or len(self.planes) != len(self.layers) or min(self.layers) < 1:
            raise ArchitectureError(
                f"a ResNet needs one width per stage and a block in each, got layers={self.layers} planes={self.planes}"
            )
        if self.attention and len(self.attention_sizes) != len(self.layers):
            raise ArchitectureError(f"{self.attention} attention needs a size per stage, got {self.attention_sizes}")

    def block_width(self, stage: int) -> int:
        planes = self.planes[stage]
        return int(planes * (self.width_per_group / 64.0)) * self.groups if self.bottleneck else planes

    def block_out(self, stage: int) -> int:
        return self.planes[stage] * (4 if self.bottleneck else 1)


class SqueezeExcite(nn.Module):
    """timm's SEModule: global mean, 1x1 conv down, ReLU, 1x1 conv up, sigmoid, scale."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * self.gate(scale)


class EfficientChannelAttention(nn.Module):
    """timm's EcaModule (Wang et al. 2020): a 1-D conv across the pooled channels."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean((2, 3)).view(x.shape[0], 1, -1)
        scale = self.gate(self.conv(pooled)).view(x.shape[0], -1, 1, 1)
        return x * scale


def _attention(layout: Layout, stage: int, channels: int) -> nn.Module | None:
    if layout.attention == "se":
        return SqueezeExcite(channels, layout.attention_sizes[stage])
    if layout.attention == "eca":
        return EfficientChannelAttention(layout.attention_sizes[stage])
    return None


def _shortcut(layout: Layout, inplanes: int, out: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == out:
        return None
    if layout.down == "avg":
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        return nn.Sequential(pool, nn.Conv2d(inplanes, out, 1, bias=False), nn.BatchNorm2d(out))
    conv = nn.Conv2d(inplanes, out, 1, stride=stride, bias=False)
    # A pre-activation block's shortcut reads the normalised input: no norm of its own.
    return nn.Sequential(conv) if layout.preact else nn.Sequential(conv, nn.BatchNorm2d(out))


class Block(nn.Module):
    """A residual block, post-activation (torchvision, timm) or pre-activation (PreAct ResNet)."""

    def __init__(self, layout: Layout, stage: int, inplanes: int, stride: int):
        super().__init__()
        width, out = layout.block_width(stage), layout.block_out(stage)
        self.preact = layout.preact
        if layout.bottleneck:
            first_stride, middle_stride = (stride, 1) if layout.stride_in_1x1 else (1, stride)
            convs = [
                nn.Conv2d(inplanes, width, 1, first_stride, bias=False),
                nn.Conv2d(width, width, 3, middle_stride, 1, groups=layout.groups, bias=False),
                nn.Conv2d(width, out, 1, bias=False),
            ]
        else:
            convs = [nn.Conv2d(inplanes, width, 3, stride, 1, bias=False), nn.Conv2d(width, out, 3, 1, 1, bias=False)]
        # Registration order is the order of the weights in the source's state dict.
        normed = (
            [inplanes, *(conv.out_channels for conv in convs[:-1])]
            if self.preact
            else [conv.out_channels for conv in convs]
        )
        for index, (conv, features) in enumerate(zip(convs, normed), start=1):
            if self.preact:
                setattr(self, f"bn{index}", nn.BatchNorm2d(features))
            setattr(self, f"conv{index}", conv)
            if not self.preact:
                setattr(self, f"bn{index}", nn.BatchNorm2d(features))
        self.depth = len(convs)
        self.relu = nn.ReLU(inplace=True)
        self.se = _attention(layout, stage, out)
        self.downsample = _shortcut(layout, inplanes, out, stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.preact:
            return self._forward_preact(x)
        out = x
        for index in range(1, self.depth + 1):
            out = getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(out))
            if index < self.depth:
                out = self.relu(out)
        if self.se is not None:
            out = self.se(out)
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)

    def _forward_preact(self, x: Tensor) -> Tensor:
        normed = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(normed)
        out = self.conv1(normed)
        for index in range(2, self.depth + 1):
            out = getattr(self, f"conv{index}")(self.relu(getattr(self, f"bn{index}")(out)))
        if self.se is not None:
            out = self.se(out)
        return out + shortcut


class GeneralResNet(nn.Module):
    def __init__(self, layout: Layout):
        super().__init__()
        self.layout = layout
        stem_stride = 1 if layout.stem == "3x3" else 2
        if layout.stem == "deep":
            first, second = layout.stem_widths
            self.conv1 = nn.Sequential(
                nn.Conv2d(layout.in_chans, first, 3, 2, 1, bias=False),
                nn.BatchNorm2d(first),
                nn.ReLU(inplace=True),
                nn.Conv2d(first, second, 3, 1, 1, bias=False),
                nn.BatchNorm2d(second),
                nn.ReLU(inplace=True),
                nn.Conv2d(second, layout.stem_width, 3, 1, 1, bias=False),
            )
        else:
            kernel = 7 if layout.stem == "7x7" else 3
            self.conv1 = nn.Conv2d(layout.in_chans, layout.stem_width, kernel, stem_stride, kernel // 2, bias=False)
        # A pre-activation network normalises inside its first block, not after the stem.
        self.bn1 = None if layout.preact else nn.BatchNorm2d(layout.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if layout.stem_pool else nn.Identity()
        inplanes = layout.stem_width
        for stage, blocks in enumerate(layout.layers):
            stride = layout.first_stride if stage == 0 else 2
            members = []
            for index in range(blocks):
                members.append(Block(layout, stage, inplanes, stride if index == 0 else 1))
                inplanes = layout.block_out(stage)
            self.add_module(f"layer{stage + 1}", nn.Sequential(*members))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, layout.num_classes)

    @property
    def stages(self) -> Sequence[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.layout.layers))]

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.avgpool(x).flatten(1))
