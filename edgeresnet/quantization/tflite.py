"""A ResNet rebuilt with fake quantization exactly where TFLite's int8 kernels round.

TFLite runs a ResNet as CONV_2D ops with batch norm folded into the weights and the
ReLU fused, ADDs with a fused ReLU, a MEAN and a FULLY_CONNECTED op. Each op's output is
an int8 tensor; pads, strided slices and max pools reuse their input's scale. So:

    input -> [conv+bn(+relu)] -> q  ...  path + shortcut -> relu -> q  ...  mean -> q -> fc -> q

Batch norm is folded the way Jacob et al. 2018 describe: the weights are quantized
after scaling by gamma / sqrt(running var); while batch norm still trains, the conv's
output is scaled back and normalised with the batch's statistics; once frozen, the
forward pass is exactly the folded conv with a bias, as in the exported file.

``QatResNet`` rebuilds the zoo's ResNets, ``QatGeneralResNet`` the layouts of other
projects (``models.general``: deep stem, average-pool shortcut, squeeze-excitation, ECA,
pre-activation; the ops TFLite makes of each are listed above that class). A module no
layout describes is refused: which ops the converters make of it is not known.

``fold`` writes the result back into the source architecture (batch norms gone, biases in
the convs, weights on the int8 grid): the float graph that export converts, while
``ranges`` gives the activation ranges that the TFLite exporter puts into the file
instead of calibrating its own.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArchitectureError
from ..models.cifar import PadShortcut
from .fake import ACT_MAX, ACT_MIN, ActivationQuantizer, fake_quantize_bias, fake_quantize_weight, weight_scale


def _mean_output(quantizer: ActivationQuantizer) -> ActivationQuantizer:
    """Mark a quantization point that is a MEAN's output in the file (see ``signatures``)."""
    quantizer.produced_by = "MEAN"
    return quantizer


def _global_mean(x: Tensor, quantizer: ActivationQuantizer, keepdim: bool = False) -> Tensor:
    """The mean over the feature map: TFLite's MEAN, int8 with a scale of its own; over a 1x1
    map the ONNX exporter drops the mean, and the values keep their scale (and the point goes
    unused)."""
    y = x.mean(dim=(2, 3), keepdim=keepdim)
    return y if x.shape[2] * x.shape[3] == 1 else quantizer(y)


class QuantConvBn(nn.Module):
    """conv -> batch norm (folded) -> optional ReLU -> int8 output. ``bn`` None: a conv
    with no batch norm after it (its own bias, if any, is quantized like a folded one)."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, relu: bool, names: tuple[str, str | None]):
        super().__init__()
        self.conv, self.bn, self.relu = conv, bn, relu
        self.names = names  # where conv and bn live in the zoo module, for fold()
        self.out = ActivationQuantizer()
        self.bn_frozen = False
        self.source: list[ActivationQuantizer] = []  # the quantizer of the input (a list: not a submodule)
        self.weight_max = 127  # 63 for a 7-bit grid (openvino_cpu: CPUs without VNNI)

    def _factor(self) -> Tensor:
        return self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)

    def folded_float(self) -> tuple[Tensor, Tensor | None]:
        """The float weights and bias, batch norm folded in with its running statistics."""
        if self.bn is None:
            return self.conv.weight, self.conv.bias
        factor = self._factor()
        weight = self.conv.weight * factor.reshape(-1, 1, 1, 1)
        bias = self.bn.bias - self.bn.running_mean * factor
        if self.conv.bias is not None:
            bias = bias + self.conv.bias * factor
        return weight, bias

    def folded(self) -> tuple[Tensor, Tensor | None]:
        """The weights on the int8 grid and the bias quantized at the input's scale."""
        weight, bias = self.folded_float()
        scale = weight_scale(weight, self.weight_max)
        return (
            fake_quantize_weight(weight, self.weight_max),
            None if bias is None else _quantize_bias(bias, self.source, scale),
        )

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        weight, bias = self.folded()
        if self.training and not self.bn_frozen and self.bn is not None:
            # Quantize the folded weights, then undo the running-statistics scale and let
            # batch norm normalise with the batch's (and update its running statistics).
            unscale = (1.0 / self._factor()).reshape(1, -1, 1, 1)
            y = F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups) * unscale
            if conv.bias is not None:
                y = y + conv.bias.reshape(1, -1, 1, 1)
            y = self.bn(y)
        else:
            y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        return self.out(F.relu(y) if self.relu else y)

    def freeze_bn(self) -> None:
        self.bn_frozen = True
        if self.bn is not None:
            self.bn.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.bn_frozen and self.bn is not None:
            self.bn.eval()
        return self


class QuantLinear(nn.Module):
    """The head: per-channel int8 weights (TFLite's default for FULLY_CONNECTED), int8 logits."""

    def __init__(self, linear: nn.Linear, name: str):
        super().__init__()
        self.linear, self.name = linear, name
        self.out = ActivationQuantizer()
        self.source: list[ActivationQuantizer] = []

    weight_max = 127

    def folded_float(self) -> tuple[Tensor, Tensor]:
        return self.linear.weight, self.linear.bias

    def folded(self) -> tuple[Tensor, Tensor]:
        weight = self.linear.weight
        return fake_quantize_weight(weight), _quantize_bias(self.linear.bias, self.source, weight_scale(weight))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.linear(x, *self.folded()))


def _quantize_bias(bias: Tensor, source: list[ActivationQuantizer], scale: Tensor) -> Tensor:
    """int32 at the input's scale: the first of ``source`` that saw data (a mean over a 1x1
    map is skipped, and its input's quantizer sets the scale)."""
    seen = [q for q in source if bool(q.seen)]
    if not seen:
        return bias
    return fake_quantize_bias(bias, seen[0].qparams()[0], scale)


class QuantBlock(nn.Module):
    """A residual block: the path's convs, the shortcut, and the int8 sum after the ReLU."""

    def __init__(self, path: list[QuantConvBn], shortcut: nn.Module):
        super().__init__()
        self.path = nn.Sequential(*path)
        self.shortcut = shortcut  # Identity, a zero-padding PadShortcut, or a QuantConvBn projection
        self.out = ActivationQuantizer()

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.path(x) + self.shortcut(x)))


class Segment(nn.Module):
    """A part of a simulator's forward pass; ``parts`` are the modules it runs."""

    def __init__(self, run, *parts: nn.Module):
        super().__init__()
        self.run, self.parts = run, nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)


class _QatNetwork(nn.Module):
    """What both simulators share: input quantizer, stem, max pool, blocks, mean, head."""

    def forward(self, x: Tensor) -> Tensor:
        for segment in self.segments():
            x = segment(x)
        return x

    def segments(self) -> list[nn.Module]:
        """The forward pass as consecutive parts: input and stem, each block, mean and head
        (post-training quantization runs them one at a time)."""
        stem = Segment(lambda x: self.maxpool(self.stem(self.input(x))), self.input, self.stem, self.maxpool)
        head = Segment(lambda x: self.head(_global_mean(x, self.pool)), self.pool, self.head)
        return [stem, *self.blocks, head]

    def quantizers(self) -> dict[str, ActivationQuantizer]:
        return {name: m for name, m in self.named_modules() if isinstance(m, ActivationQuantizer)}

    def conv_bns(self) -> list[QuantConvBn]:
        return [m for m in self.modules() if isinstance(m, QuantConvBn)]


class QatResNet(_QatNetwork):
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
        self.pool = _mean_output(ActivationQuantizer())
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


# -- GeneralResNet: the layouts of other projects (edgeresnet.models.general) ----------------
#
# What onnx2tf and the TFLite converter make of each construct, and so what is simulated
# (found by converting tiny models and listing the int8 file's ops and scales):
#
#   deep stem            three CONV_2D, batch norm folded, ReLU fused: three conv+bn(+relu) points
#   no max pool          nothing
#   avg-pool shortcut    AVERAGE_POOL_2D, whose output keeps its input's scale: the window's int8
#                        codes averaged and rounded half away from zero (SameScale); then CONV_2D.
#                        On an odd-sized map ``fold`` writes the pool as an edge pad and a plain
#                        pool (EdgePaddedAvgPool), which convert to MIRROR_PAD + AVERAGE_POOL_2D
#   squeeze-excitation   MEAN -> CONV_2D(+RELU) -> CONV_2D -> LOGISTIC (output scale 1/256, zero
#                        point -128, fixed: LogisticOutput) -> MUL by the block's path, own scale
#   ECA                  MEAN to [1, C] -> RESHAPE [1, 1, C, 1] -> CONV_2D (1 x k kernel, the
#                        channels as its width) -> LOGISTIC -> RESHAPE -> MUL
#   pre-activation       the batch norm on the residual stream: MUL by a per-channel constant,
#                        then ADD of another with the ReLU fused, each constant int8 per tensor,
#                        each output int8 (QuantBatchNorm); the norms inside the path fold into
#                        the conv before them; the first block's folds into the stem when only it
#                        reads the stem (a projection shortcut, no max pool); the block's ADD has
#                        no ReLU
#   any mean over 1x1    dropped by the ONNX exporter: no MEAN, no rounding (_global_mean)


def _fake_quantize_constant(value: Tensor) -> Tensor:
    """A constant operand of MUL or ADD, as the converter stores it: int8, per tensor, asymmetric,
    its range the constant's own min and max (widened to hold 0)."""
    low, high = value.detach().min().clamp(max=0.0), value.detach().max().clamp(min=0.0)
    scale = ((high - low) / (ACT_MAX - ACT_MIN)).clamp(min=1e-8)
    zero_point = torch.round(ACT_MIN - low / scale).clamp(ACT_MIN, ACT_MAX).to(torch.int32)
    return torch.fake_quantize_per_tensor_affine(value, scale.reshape(()), zero_point.reshape(()), ACT_MIN, ACT_MAX)


class LogisticOutput(ActivationQuantizer):
    """LOGISTIC's int8 output: scale 1/256 and zero point -128 whatever the data, so its range
    is fixed at [0, 255/256] and never observed (the exporter writes that range, which the
    converter would impose anyway)."""

    def __init__(self):
        super().__init__()
        self.max.fill_(255.0 / 256)
        self.seen.fill_(True)

    def observe(self, x: Tensor) -> None:
        pass


class QuantBatchNorm(nn.Module):
    """A batch norm no conv absorbs (pre-activation's, on the residual stream): TFLite's MUL by
    gamma / sqrt(var) and ADD of beta - mean * that, ReLU fused; constants and outputs int8.

    While batch norm still trains, the MUL's output is scaled back and normalised with the
    batch's statistics (as QuantConvBn does); once frozen, the forward pass is the file's.
    """

    def __init__(self, bn: nn.BatchNorm2d, relu: bool, name: str):
        super().__init__()
        self.bn, self.relu, self.name = bn, relu, name
        self.product = ActivationQuantizer()  # MUL's output
        self.out = ActivationQuantizer()  # ADD's
        self.bn_frozen = False

    def _factor(self) -> Tensor:
        return self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)

    def constants(self) -> tuple[Tensor, Tensor]:
        """(multiplier, addend) per channel, on the grid the converter quantizes them to."""
        factor = self._factor()
        return _fake_quantize_constant(factor), _fake_quantize_constant(self.bn.bias - self.bn.running_mean * factor)

    def forward(self, x: Tensor) -> Tensor:
        multiplier, addend = (c.reshape(1, -1, 1, 1) for c in self.constants())
        product = self.product(x * multiplier)
        if self.training and not self.bn_frozen:
            factor = self._factor().detach().reshape(1, -1, 1, 1)
            y = self.bn(torch.where(factor == 0, x, product / torch.where(factor == 0, 1.0, factor)))
        else:
            y = product + addend
        return self.out(F.relu(y) if self.relu else y)

    def freeze_bn(self) -> None:
        self.bn_frozen = True
        self.bn.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.bn_frozen:
            self.bn.eval()
        return self


class SameScale(nn.Module):
    """An average pool in int8: TFLite keeps its input's scale and zero point, sums the window's
    int8 codes and divides, rounding half away from zero (reference kernels and XNNPACK alike)."""

    def __init__(self, op: nn.Module, name: str):
        super().__init__()
        self.op, self.name = op, name
        self.source: list[ActivationQuantizer] = []

    def forward(self, x: Tensor) -> Tensor:
        y = self.op(x)
        source = self.source[0]
        if not source.enabled or not bool(source.seen):
            return y
        scale, zero_point = source.qparams()
        codes = self.op(torch.round(x.detach() / scale) + zero_point)  # the file's int8 values, averaged
        rounded = torch.sign(codes) * torch.floor(codes.abs() + 0.5)
        return y + ((rounded - zero_point) * scale - y).detach()


class EdgePaddedAvgPool(nn.Module):
    """ResNet-D's shortcut pool (ceil mode, padding left out of the count) as the file should
    compute it: a feature map of odd size gets a copy of its last row and column, then a
    plain pool. Equal in float (a window's copied cells repeat its real ones), and converted
    to MIRROR_PAD + AVERAGE_POOL_2D, both keeping their input's scale, where the pool itself
    becomes a pad, a pool, and slices multiplied back into place whose concatenation forces
    one scale onto the block before. Only in the float network ``fold`` writes."""

    def __init__(self, pool: nn.AvgPool2d):
        super().__init__()
        self.kernel_size, self.stride = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        extra = [
            max(0, -(-(size - k) // s) * s + k - size) for size, k, s in zip(x.shape[2:], self.kernel_size, self.stride)
        ]  # ceil mode's last, partial window
        if any(extra):
            x = F.pad(x, (0, extra[1], 0, extra[0]), mode="replicate")
        return F.avg_pool2d(x, self.kernel_size, self.stride)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class QuantSqueezeExcite(nn.Module):
    """MEAN -> 1x1 conv + ReLU -> 1x1 conv -> LOGISTIC -> MUL."""

    def __init__(self, se: nn.Module, prefix: str):
        super().__init__()
        self.pool = _mean_output(ActivationQuantizer())
        self.fc1 = QuantConvBn(se.fc1, None, True, (f"{prefix}.fc1", None))
        self.fc2 = QuantConvBn(se.fc2, None, False, (f"{prefix}.fc2", None))
        self.fc1.source.append(self.pool)
        self.fc2.source.append(self.fc1.out)
        self.gate = LogisticOutput()
        self.out = ActivationQuantizer()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.gate(torch.sigmoid(self.fc2(self.fc1(_global_mean(x, self.pool, keepdim=True)))))
        return self.out(x * gate)


class QuantEfficientChannelAttention(nn.Module):
    """MEAN to (1, C) -> a 1 x k CONV_2D across the channels -> LOGISTIC -> MUL."""

    def __init__(self, eca: nn.Module, prefix: str):
        super().__init__()
        conv = eca.conv
        if conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or not isinstance(conv.padding, tuple):
            raise ArchitectureError(
                f"quantization-aware training for TFLite does not know the ECA conv {conv}", _OTHER_SCHEMES
            )
        self.conv, self.name = conv, f"{prefix}.conv"
        self.pool = _mean_output(ActivationQuantizer())
        self.source: list[ActivationQuantizer] = [self.pool]  # then the block path's output, wired by the block
        self.gate_input = ActivationQuantizer()  # the conv's output
        self.gate = LogisticOutput()
        self.out = ActivationQuantizer()

    def folded(self) -> tuple[Tensor, Tensor | None]:
        weight, bias = self.conv.weight, self.conv.bias
        return fake_quantize_weight(weight), None if bias is None else _quantize_bias(
            bias, self.source, weight_scale(weight)
        )

    def forward(self, x: Tensor) -> Tensor:
        batch, channels = x.shape[:2]
        pooled = _global_mean(x, self.pool)
        weight, bias = self.folded()
        # NHWC [1, 1, C, 1] in the file: the channels are the width of a one-channel image.
        y = F.conv2d(
            pooled.reshape(batch, 1, 1, channels), weight.unsqueeze(2), bias, padding=(0, self.conv.padding[0])
        )
        gate = self.gate(torch.sigmoid(self.gate_input(y))).reshape(batch, channels, 1, 1)
        return self.out(x * gate)


class QuantGeneralBlock(nn.Module):
    """A GeneralResNet block: [pre-activation norm] -> path -> [attention] + shortcut [-> ReLU] -> int8."""

    def __init__(
        self,
        pre: nn.Module,
        path: list[QuantConvBn],
        attention: nn.Module,
        shortcut: nn.Module,
        shortcut_reads_normed: bool,
        relu: bool,
    ):
        super().__init__()
        self.pre, self.path, self.attention, self.shortcut = pre, nn.Sequential(*path), attention, shortcut
        self.shortcut_reads_normed, self.relu = shortcut_reads_normed, relu
        self.out = ActivationQuantizer()

    def forward(self, x: Tensor) -> Tensor:
        normed = self.pre(x)
        y = self.attention(self.path(normed)) + self.shortcut(normed if self.shortcut_reads_normed else x)
        return self.out(F.relu(y) if self.relu else y)


_OTHER_SCHEMES = (
    "train it for openvino-int8 or coreml-w8a8 instead (qat scheme openvino or coreml), or "
    "quantize it after training (the ptq-int8 recipe)"
)


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
                _OTHER_SCHEMES,
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
        self.pool = _mean_output(ActivationQuantizer())
        if not isinstance(getattr(net, "fc", None), nn.Linear):
            raise ArchitectureError("quantization-aware training for TFLite needs a Linear head (fc)", _OTHER_SCHEMES)
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
                _OTHER_SCHEMES,
            )
    if not groups or groups[-1][2] is not None or groups[-1][4]:
        raise ArchitectureError(
            "quantization-aware training for TFLite needs a stem that ends in a conv", _OTHER_SCHEMES
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
            f"quantization-aware training for TFLite does not know the block {type(block).__name__}", _OTHER_SCHEMES
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
            _OTHER_SCHEMES,
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
            f"quantization-aware training for TFLite does not know the shortcut {downsample}", _OTHER_SCHEMES
        )
    offset = 0 if pool is None else 1
    quant = QuantConvBn(conv, bn, False, (f"{prefix}.{offset}", None if bn is None else f"{prefix}.{offset + 1}"))
    quant.source.append(source)  # an average pool keeps its input's scale
    if pool is None or isinstance(pool, nn.Identity):
        return quant, preact
    same = SameScale(pool, f"{prefix}.0")
    same.source.append(source)
    return nn.Sequential(same, quant), preact


def knows(net: nn.Module) -> bool:
    """Whether ``prepare`` can simulate this module: a zoo ResNet or a GeneralResNet."""
    from ..models.cifar import CifarResNet
    from ..models.general import GeneralResNet
    from ..models.resnet import ResNet

    return isinstance(net, (GeneralResNet, ResNet, CifarResNet))


def plain_layout(qat: nn.Module, gates: tuple[type, ...] = ()) -> bool:
    """Whether a simulator holds only the plain ops the exact per-runtime simulations cover
    (openvino_cpu, tflite_exact): any zoo layout, or a GeneralResNet with conv stems, max pool
    or none, and post-activation blocks with identity, zero-pad or projection shortcuts; not
    pre-activation norms, attention gates (but those of the types in ``gates``) or average-pool
    shortcuts."""
    if isinstance(qat, QatResNet):
        return True
    if not isinstance(qat, QatGeneralResNet) or not isinstance(qat.maxpool, (nn.Identity, nn.MaxPool2d)):
        return False
    return all(
        isinstance(block.pre, nn.Identity)
        and isinstance(block.attention, (nn.Identity, *gates))
        and block.relu
        and isinstance(block.shortcut, (nn.Identity, QuantConvBn, PadShortcut))
        for block in qat.blocks
    )


def prepare(net: nn.Module) -> QatResNet | QatGeneralResNet:
    """A QAT copy of a zoo ResNet or a GeneralResNet; its ranges still need a calibration pass
    (`calibrate_ranges`). Any other module is refused: its ops are not known."""
    from ..models.cifar import CifarResNet
    from ..models.general import GeneralResNet
    from ..models.resnet import ResNet

    if isinstance(net, GeneralResNet):
        return QatGeneralResNet(net)
    if isinstance(net, (ResNet, CifarResNet)):
        return QatResNet(net)
    raise ArchitectureError(
        f"quantization-aware training for TFLite simulates ResNets of known layouts only, "
        f"not the module {type(net).__name__}",
        _OTHER_SCHEMES,
    )


def _norms(qat: nn.Module) -> list[nn.Module]:
    """The parts whose batch norm trains until frozen: folded convs and pre-activation norms."""
    return [m for m in qat.modules() if isinstance(m, (QuantConvBn, QuantBatchNorm)) and m.bn is not None]


@torch.no_grad()
def calibrate_ranges(qat: QatResNet, batches) -> None:
    """Start every range at the min/max of a few float batches, before training moves them."""
    quantizers = qat.quantizers().values()
    for q in quantizers:
        q.enabled = False
    qat.train()
    for part in _norms(qat):  # statistics are observed, but batch norm must not change
        part.bn.eval()
    for inputs in batches:
        qat(inputs)
    for q in quantizers:
        q.enabled = True
    qat.eval()


def _ceil_mode_pool(op: nn.Module) -> bool:
    return isinstance(op, nn.AvgPool2d) and op.ceil_mode and not op.count_include_pad and not any(_pair(op.padding))


@torch.no_grad()
def fold(qat: QatResNet | QatGeneralResNet, like: nn.Module) -> nn.Module:
    """The module ``like`` with the QAT weights: batch norms folded away, weights on the int8 grid
    (a pre-activation norm no conv absorbs keeps its place, its constants on their int8 grid)."""
    net = copy.deepcopy(like).eval()
    for conv_bn in qat.conv_bns():
        conv_name, bn_name = conv_bn.names
        weight, bias = conv_bn.folded()
        conv = net.get_submodule(conv_name)
        conv.weight = nn.Parameter(weight.clone())
        conv.bias = None if bias is None else nn.Parameter(bias.clone())
        if bn_name is not None:
            parent, _, attr = bn_name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, nn.Identity())
    for part in qat.modules():
        if isinstance(part, QuantBatchNorm):
            multiplier, addend = part.constants()
            bn = net.get_submodule(part.name)
            bn.weight, bn.bias = nn.Parameter(multiplier.clone()), nn.Parameter(addend.clone())
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.eps = 0.0  # y = x * multiplier + addend, exactly
        elif isinstance(part, SameScale) and _ceil_mode_pool(part.op):
            parent, _, attr = part.name.rpartition(".")
            setattr(net.get_submodule(parent), attr, EdgePaddedAvgPool(part.op))
        elif isinstance(part, QuantEfficientChannelAttention):
            weight, bias = part.folded()
            conv = net.get_submodule(part.name)
            conv.weight = nn.Parameter(weight.clone())
            conv.bias = None if bias is None else nn.Parameter(bias.clone())
    head = getattr(net, qat.head.name)
    weight, bias = qat.head.folded()
    head.weight, head.bias = nn.Parameter(weight.clone()), nn.Parameter(bias.clone())
    return net


def ranges(qat: QatResNet) -> dict[str, tuple[float, float]]:
    """Each quantization point's learned (min, max), by its name in the QAT module."""
    return {name: (float(q.min), float(q.max)) for name, q in qat.quantizers().items()}


@torch.no_grad()
def signatures(qat: QatResNet, inputs: Tensor) -> dict[str, dict]:
    """How to recognise each quantization point in the converted float graph.

    For each point: its NHWC shape and, per input image, the mean of each channel of the
    unquantized values there; for a MEAN's output also ``"op": "MEAN"``. Converters rename
    and reorder tensors freely, and TFLite's calibrator logs some tensors after an in-place
    op has overwritten them, so the exporter finds a point by what flows through it instead
    of by name or statistics.
    """
    seen: dict[str, dict] = {}
    hooks = []
    for name, q in qat.quantizers().items():

        def record(module, args, output, name=name):
            x = args[0]
            means = x.mean(dim=(2, 3)) if x.ndim == 4 else x
            shape = [1, *x.shape[2:], x.shape[1]] if x.ndim == 4 else [1, x.shape[1]]
            seen[name] = {
                "shape": shape,
                "channel_means": means.tolist(),
                **({"op": module.produced_by} if hasattr(module, "produced_by") else {}),
            }

        hooks.append(q.register_forward_hook(record))
    enabled = {q: q.enabled for q in qat.quantizers().values()}
    try:
        for q in enabled:
            q.enabled = False
        qat.eval()
        qat(inputs)
    finally:
        for hook in hooks:
            hook.remove()
        for q, state in enabled.items():
            q.enabled = state
    return seen


# What the qat stage calls, the same for every scheme (see quantization/__init__.py).


def prepare_for_training(net: nn.Module, calibration: Tensor, batch_size: int = 64) -> QatResNet:
    qat = prepare(net)
    calibrate_ranges(qat, calibration.split(batch_size))
    return qat


def freeze_batch_norm(qat: QatResNet | QatGeneralResNet) -> None:
    for part in qat.modules():
        if isinstance(part, (QuantConvBn, QuantBatchNorm)):
            part.freeze_bn()


def finish(qat: QatResNet, like: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the QAT module, its float network) once training is over."""
    qat.eval()
    return qat, fold(qat, like)
