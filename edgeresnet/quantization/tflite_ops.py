"""The int8 ops of a plain ResNet in TFLite, as modules that fake-quantize exactly where its kernels round.

TFLite runs a ResNet as CONV_2D ops with batch norm folded into the weights and the
ReLU fused, ADDs with a fused ReLU, a MEAN and a FULLY_CONNECTED op. Each op's output is
an int8 tensor; pads, strided slices and max pools reuse their input's scale. So:

    input -> [conv+bn(+relu)] -> q  ...  path + shortcut -> relu -> q  ...  mean -> q -> fc -> q

Batch norm is folded the way Jacob et al. 2018 describe: the weights are quantized
after scaling by gamma / sqrt(running var); while batch norm still trains, the conv's
output is scaled back and normalised with the batch's statistics; once frozen, the
forward pass is exactly the folded conv with a bias, as in the exported file.

The constructs only other projects' layouts use (attention gates, pre-activation norms,
average-pool shortcuts) are in tflite_general_ops.py; the networks built of these ops in
tflite_layouts.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fake import ActivationQuantizer, fake_quantize_bias, fake_quantize_weight, weight_scale

# Why a module the TFLite simulator refuses may still be trained: the other schemes quantize
# with the vendors' own tools, and ptq needs no simulator of the training graph.
OTHER_SCHEMES_HINT = (
    "train it for openvino-int8 or coreml-w8a8 instead (qat scheme openvino or coreml), or "
    "quantize it after training (the ptq-int8 recipe)"
)


def mean_output(quantizer: ActivationQuantizer) -> ActivationQuantizer:
    """Mark a quantization point that is a MEAN's output in the file (see ``tflite.signatures``)."""
    quantizer.produced_by = "MEAN"
    return quantizer


def global_mean(x: Tensor, quantizer: ActivationQuantizer, keepdim: bool = False) -> Tensor:
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
            None if bias is None else quantize_bias(bias, self.source, scale),
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
        return fake_quantize_weight(weight), quantize_bias(self.linear.bias, self.source, weight_scale(weight))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.linear(x, *self.folded()))


def quantize_bias(bias: Tensor, source: list[ActivationQuantizer], scale: Tensor) -> Tensor:
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
