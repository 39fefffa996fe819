"""The TFLite simulator of a whole network, one class per family of layouts.

``QatResNet`` rebuilds the zoo's ResNets, ``QatGeneralResNet`` the layouts of other
projects (``models.general``: deep stem, average-pool shortcut, squeeze-excitation, ECA,
pre-activation; the ops TFLite makes of each are listed in tflite_general_ops.py). Each
copies the network, puts the fake-quantized ops of tflite_ops.py and tflite_general_ops.py
in place of its layers, and tells every conv which quantizer feeds it (its bias is
quantized at that scale). A module no layout describes is refused: which ops the
converters make of it is not known.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from ..errors import ArchitectureError
from ..models.cifar import PadShortcut
from .fake import ActivationQuantizer
from .tflite_general_ops import (
    QuantBatchNorm,
    QuantEfficientChannelAttention,
    QuantGeneralBlock,
    QuantSqueezeExcite,
    SameScale,
)
from .tflite_ops import OTHER_SCHEMES_HINT, QuantBlock, QuantConvBn, QuantLinear, global_mean, mean_output


class Segment(nn.Module):
    """A part of a simulator's forward pass; ``parts`` are the modules it runs."""

    def __init__(self, run, *parts: nn.Module):
        super().__init__()
        self.run, self.parts = run, nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)


class _QatNetwork(nn.Module):
    """What both simulators share: input quantizer, stem, max pool, blocks, mean, head."""

    # Set by each subclass's __init__ (declared here for the shared forward pass).
    input: ActivationQuantizer
    stem: nn.Module
    maxpool: nn.Module
    blocks: nn.Sequential
    pool: ActivationQuantizer
    head: QuantLinear

    def forward(self, x: Tensor) -> Tensor:
        for segment in self.segments():
            x = segment(x)
        return x

    def segments(self) -> list[nn.Module]:
        """The forward pass as consecutive parts: input and stem, each block, mean and head
        (post-training quantization runs them one at a time)."""
        stem = Segment(lambda x: self.maxpool(self.stem(self.input(x))), self.input, self.stem, self.maxpool)
        head = Segment(lambda x: self.head(global_mean(x, self.pool)), self.pool, self.head)
        return [stem, *self.blocks, head]

    def quantizers(self) -> dict[str, ActivationQuantizer]:
        return {name: m for name, m in self.named_modules() if isinstance(m, ActivationQuantizer)}

    def conv_bns(self) -> list[QuantConvBn]:
        return [m for m in self.modules() if isinstance(m, QuantConvBn)]


class QatResNet(_QatNetwork):
    """A zoo ResNet (models.resnet, models.cifar) with fake quantization where TFLite's int8 kernels round."""

    stem: QuantConvBn  # one conv (a GeneralResNet's stem is a Sequential of them)

    def __init__(self, net: nn.Module):
        super().__init__()
        net = copy.deepcopy(net)
        self.input = ActivationQuantizer()
        self.stem = QuantConvBn(net.conv1, net.bn1, True, ("conv1", "bn1"))
        self.maxpool = getattr(net, "maxpool", nn.Identity())  # same scale in and out: nothing to quantize
        self.blocks = nn.Sequential(
            *[
                _quant_block(block, f"{stage}.{i}")
                for stage in _stages(net)
                for i, block in enumerate(getattr(net, stage))
                if not isinstance(block, nn.Identity)  # a block pruning removed
            ]
        )
        self.pool = mean_output(ActivationQuantizer())
        head = "fc" if hasattr(net, "fc") else "linear"
        self.head = QuantLinear(getattr(net, head), head)
        self._wire_sources()

    def _wire_sources(self) -> None:
        """Tell each conv the quantizer of its input, whose scale sets its bias's (pads,
        slices and the max pool keep their input's scale)."""
        self.stem.source.append(self.input)
        previous = self.stem.out
        for block in self.blocks:
            before = previous
            for conv in block.path:
                conv.source.append(before)
                before = conv.out
            if isinstance(block.shortcut, QuantConvBn):
                block.shortcut.source.append(previous)
            previous = block.out
        self.head.source.extend([self.pool, previous])


def _stages(net: nn.Module) -> list[str]:
    return [name for name in ("layer1", "layer2", "layer3", "layer4") if hasattr(net, name)]


def _quant_block(block: nn.Module, prefix: str) -> QuantBlock:
    kind = type(block).__name__
    if kind == "Bottleneck":
        convs = [("conv1", "bn1", True), ("conv2", "bn2", True), ("conv3", "bn3", False)]
    elif kind in ("BasicBlock", "CifarBlock"):
        convs = [("conv1", "bn1", True), ("conv2", "bn2", False)]
    else:
        raise ArchitectureError(
            f"quantization-aware training does not know the block {kind}",
            "use a ResNet of the model zoo (edgeresnet models)",
        )
    path = [
        QuantConvBn(getattr(block, c), getattr(block, b), relu, (f"{prefix}.{c}", f"{prefix}.{b}"))
        for c, b, relu in convs
    ]
    shortcut = getattr(block, "downsample", None) or getattr(block, "shortcut", None) or nn.Identity()
    owner = "downsample" if hasattr(block, "downsample") else "shortcut"
    if isinstance(shortcut, nn.Sequential):  # a 1x1 projection and its batch norm
        shortcut = QuantConvBn(shortcut[0], shortcut[1], False, (f"{prefix}.{owner}.0", f"{prefix}.{owner}.1"))
    elif not isinstance(shortcut, (nn.Identity, PadShortcut)):
        raise ArchitectureError(
            f"quantization-aware training does not know the shortcut {type(shortcut).__name__}",
            "use a ResNet of the model zoo (edgeresnet models)",
        )
    return QuantBlock(path, shortcut)


class QatGeneralResNet(_QatNetwork):
    """A GeneralResNet with fake quantization where TFLite's int8 kernels round (see above)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        net = copy.deepcopy(net)
        self.input = ActivationQuantizer()
        blocks = [
            (f"{stage}.{i}", block)
            for stage in _stages(net)
            for i, block in enumerate(getattr(net, stage))
            if not isinstance(block, nn.Identity)
        ]  # a block pruning removed
        if not isinstance(net.maxpool, (nn.Identity, nn.MaxPool2d)):
            raise ArchitectureError(
                f"quantization-aware training for TFLite does not know the stem pool {type(net.maxpool).__name__}",
                OTHER_SCHEMES_HINT,
            )
        # Pre-activation: the first block's norm folds into the stem's last conv when nothing
        # else reads the stem's output (a projection shortcut reads the normed input).
        first = blocks[0][1] if blocks else None
        absorbed = (
            net.bn1 is None
            and first is not None
            and first.preact
            and first.downsample is not None
            and isinstance(net.maxpool, nn.Identity)
        )
        last_norm = (
            (net.bn1, "bn1", True)
            if net.bn1 is not None
            else (first.bn1, f"{blocks[0][0]}.bn1", True)
            if absorbed
            else (None, None, False)
        )
        self.stem = nn.Sequential(*_stem_convs(net.conv1, last_norm))
        self.maxpool = net.maxpool
        previous = self.input
        for conv in self.stem:
            conv.source.append(previous)
            previous = conv.out
        quant_blocks = []
        for index, (prefix, block) in enumerate(blocks):
            quant, previous = _general_block(block, prefix, previous, skip_pre=absorbed and index == 0)
            quant_blocks.append(quant)
        self.blocks = nn.Sequential(*quant_blocks)
        self.pool = mean_output(ActivationQuantizer())
        if not isinstance(getattr(net, "fc", None), nn.Linear):
            raise ArchitectureError(
                "quantization-aware training for TFLite needs a Linear head (fc)", OTHER_SCHEMES_HINT
            )
        self.head = QuantLinear(net.fc, "fc")
        self.head.source.extend([self.pool, previous])


def _stem_convs(stem: nn.Module, last_norm: tuple) -> list[QuantConvBn]:
    """The stem's convs: one conv, or a Sequential of conv, batch norm, ReLU ... ending in a
    conv whose norm (and ReLU) is ``last_norm`` (norm, its name, relu)."""
    layers = list(stem.named_children()) if isinstance(stem, nn.Sequential) else [("", stem)]
    groups: list[list] = []  # [conv, conv name, bn, bn name, relu]
    for name, layer in layers:
        where = f"conv1.{name}" if name else "conv1"
        if isinstance(layer, nn.Conv2d):
            groups.append([layer, where, None, None, False])
        elif isinstance(layer, nn.BatchNorm2d) and groups and groups[-1][2] is None and not groups[-1][4]:
            groups[-1][2:4] = [layer, where]
        elif isinstance(layer, nn.ReLU) and groups and not groups[-1][4]:
            groups[-1][4] = True
        elif not isinstance(layer, nn.Identity):
            raise ArchitectureError(
                f"quantization-aware training for TFLite does not know the stem layer {type(layer).__name__}",
                OTHER_SCHEMES_HINT,
            )
    if not groups or groups[-1][2] is not None or groups[-1][4]:
        raise ArchitectureError(
            "quantization-aware training for TFLite needs a stem that ends in a conv", OTHER_SCHEMES_HINT
        )
    bn, bn_name, relu = last_norm
    groups[-1][2:5] = [bn, bn_name, relu]
    return [QuantConvBn(conv, bn, relu, (conv_name, bn_name)) for conv, conv_name, bn, bn_name, relu in groups]


def _general_block(
    block: nn.Module, prefix: str, source: ActivationQuantizer, skip_pre: bool
) -> tuple[QuantGeneralBlock, ActivationQuantizer]:
    """The QAT block for a GeneralResNet Block reading ``source``'s output; (block, its output quantizer)."""
    from ..models.general import Block, EfficientChannelAttention, SqueezeExcite

    if not isinstance(block, Block):
        raise ArchitectureError(
            f"quantization-aware training for TFLite does not know the block {type(block).__name__}", OTHER_SCHEMES_HINT
        )
    depth, preact = block.depth, block.preact
    if preact:
        # bn1 normalises the block's input; bn(k+1) follows conv(k) and folds into it; the last conv has none.
        convs = [(f"conv{k}", f"bn{k + 1}" if k < depth else None, k < depth) for k in range(1, depth + 1)]
        pre = nn.Identity() if skip_pre else QuantBatchNorm(block.bn1, True, f"{prefix}.bn1")
    else:
        convs = [(f"conv{k}", f"bn{k}", k < depth) for k in range(1, depth + 1)]
        pre = nn.Identity()
    normed = pre.out if isinstance(pre, QuantBatchNorm) else source
    path = [
        QuantConvBn(
            getattr(block, c),
            None if b is None else getattr(block, b),
            relu,
            (f"{prefix}.{c}", None if b is None else f"{prefix}.{b}"),
        )
        for c, b, relu in convs
    ]
    before = normed
    for conv in path:
        conv.source.append(before)
        before = conv.out
    if block.se is None:
        attention = nn.Identity()
    elif (
        type(block.se) is SqueezeExcite and isinstance(block.se.act, nn.ReLU) and isinstance(block.se.gate, nn.Sigmoid)
    ):
        attention = QuantSqueezeExcite(block.se, f"{prefix}.se")
    elif type(block.se) is EfficientChannelAttention and isinstance(block.se.gate, nn.Sigmoid):
        attention = QuantEfficientChannelAttention(block.se, f"{prefix}.se")
    else:
        raise ArchitectureError(
            f"quantization-aware training for TFLite does not know the attention {type(block.se).__name__}",
            OTHER_SCHEMES_HINT,
        )
    if not isinstance(attention, nn.Identity):  # over a 1x1 map the mean is skipped: the path's scale
        (attention.fc1 if isinstance(attention, QuantSqueezeExcite) else attention).source.append(path[-1].out)
    shortcut, reads_normed = _general_shortcut(
        block.downsample, f"{prefix}.downsample", preact, normed if preact else source
    )
    quant = QuantGeneralBlock(pre, path, attention, shortcut, reads_normed, relu=not preact)
    return quant, quant.out


def _general_shortcut(
    downsample: nn.Module | None, prefix: str, preact: bool, source: ActivationQuantizer
) -> tuple[nn.Module, bool]:
    """(the shortcut, whether it reads the pre-activation's normed input)."""
    if downsample is None:
        return nn.Identity(), False
    layers = list(downsample)
    pool = None
    if (
        layers
        and isinstance(layers[0], (nn.AvgPool2d, nn.Identity))
        and len(layers) > 1
        and not isinstance(layers[1], nn.BatchNorm2d)
    ):
        pool, layers = layers[0], layers[1:]
    conv = layers[0] if layers else None
    bn = layers[1] if len(layers) > 1 else None
    if not isinstance(conv, nn.Conv2d) or len(layers) > 2 or (bn is not None and not isinstance(bn, nn.BatchNorm2d)):
        raise ArchitectureError(
            f"quantization-aware training for TFLite does not know the shortcut {downsample}", OTHER_SCHEMES_HINT
        )
    offset = 0 if pool is None else 1
    quant = QuantConvBn(conv, bn, False, (f"{prefix}.{offset}", None if bn is None else f"{prefix}.{offset + 1}"))
    quant.source.append(source)  # an average pool keeps its input's scale
    if pool is None or isinstance(pool, nn.Identity):
        return quant, preact
    same = SameScale(pool, f"{prefix}.0")
    same.source.append(source)
    return nn.Sequential(same, quant), preact
