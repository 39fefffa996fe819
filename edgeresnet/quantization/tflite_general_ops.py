"""What TFLite makes of the constructs of other projects' ResNets (``models.general``), simulated.

What onnx2tf and the TFLite converter make of each construct, and so what is simulated
(found by converting tiny models and listing the int8 file's ops and scales):

  deep stem            three CONV_2D, batch norm folded, ReLU fused: three conv+bn(+relu) points
  no max pool          nothing
  avg-pool shortcut    AVERAGE_POOL_2D, whose output keeps its input's scale: the window's int8
                       codes averaged and rounded half away from zero (SameScale); then CONV_2D.
                       On an odd-sized map ``fold`` writes the pool as an edge pad and a plain
                       pool (EdgePaddedAvgPool), which convert to MIRROR_PAD + AVERAGE_POOL_2D
  squeeze-excitation   MEAN -> CONV_2D(+RELU) -> CONV_2D -> LOGISTIC (output scale 1/256, zero
                       point -128, fixed: LogisticOutput) -> MUL by the block's path, own scale
  ECA                  MEAN to [1, C] -> RESHAPE [1, 1, C, 1] -> CONV_2D (1 x k kernel, the
                       channels as its width) -> LOGISTIC -> RESHAPE -> MUL
  pre-activation       the batch norm on the residual stream: MUL by a per-channel constant,
                       then ADD of another with the ReLU fused, each constant int8 per tensor,
                       each output int8 (QuantBatchNorm); the norms inside the path fold into
                       the conv before them; the first block's folds into the stem when only it
                       reads the stem (a projection shortcut, no max pool); the block's ADD has
                       no ReLU
  any mean over 1x1    dropped by the ONNX exporter: no MEAN, no rounding (tflite_ops.global_mean)

The stems and convs themselves are tflite_ops.py's; tflite_layouts.py assembles a network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArchitectureError
from .fake import ACT_MAX, ACT_MIN, ActivationQuantizer, fake_quantize_weight, weight_scale
from .tflite_ops import OTHER_SCHEMES_HINT, QuantConvBn, global_mean, mean_output, quantize_bias


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
        self.kernel_size, self.stride = as_pair(pool.kernel_size), as_pair(pool.stride or pool.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        extra = [
            max(0, -(-(size - k) // s) * s + k - size) for size, k, s in zip(x.shape[2:], self.kernel_size, self.stride)
        ]  # ceil mode's last, partial window
        if any(extra):
            x = F.pad(x, (0, extra[1], 0, extra[0]), mode="replicate")
        return F.avg_pool2d(x, self.kernel_size, self.stride)


def as_pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class QuantSqueezeExcite(nn.Module):
    """MEAN -> 1x1 conv + ReLU -> 1x1 conv -> LOGISTIC -> MUL."""

    def __init__(self, se: nn.Module, prefix: str):
        super().__init__()
        self.pool = mean_output(ActivationQuantizer())
        self.fc1 = QuantConvBn(se.fc1, None, True, (f"{prefix}.fc1", None))
        self.fc2 = QuantConvBn(se.fc2, None, False, (f"{prefix}.fc2", None))
        self.fc1.source.append(self.pool)
        self.fc2.source.append(self.fc1.out)
        self.gate = LogisticOutput()
        self.out = ActivationQuantizer()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.gate(torch.sigmoid(self.fc2(self.fc1(global_mean(x, self.pool, keepdim=True)))))
        return self.out(x * gate)


class QuantEfficientChannelAttention(nn.Module):
    """MEAN to (1, C) -> a 1 x k CONV_2D across the channels -> LOGISTIC -> MUL."""

    def __init__(self, eca: nn.Module, prefix: str):
        super().__init__()
        conv = eca.conv
        if conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or not isinstance(conv.padding, tuple):
            raise ArchitectureError(
                f"quantization-aware training for TFLite does not know the ECA conv {conv}", OTHER_SCHEMES_HINT
            )
        self.conv, self.name = conv, f"{prefix}.conv"
        self.pool = mean_output(ActivationQuantizer())
        self.source: list[ActivationQuantizer] = [self.pool]  # then the block path's output, wired by the block
        self.gate_input = ActivationQuantizer()  # the conv's output
        self.gate = LogisticOutput()
        self.out = ActivationQuantizer()

    def folded(self) -> tuple[Tensor, Tensor | None]:
        weight, bias = self.conv.weight, self.conv.bias
        return fake_quantize_weight(weight), None if bias is None else quantize_bias(
            bias, self.source, weight_scale(weight)
        )

    def forward(self, x: Tensor) -> Tensor:
        batch, channels = x.shape[:2]
        pooled = global_mean(x, self.pool)
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
