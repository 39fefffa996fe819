"""A zoo ResNet rebuilt with fake quantization exactly where TFLite's int8 kernels round.

TFLite runs a ResNet as CONV_2D ops with batch norm folded into the weights and the
ReLU fused, ADDs with a fused ReLU, a MEAN and a FULLY_CONNECTED op. Each op's output is
an int8 tensor; pads, strided slices and max pools reuse their input's scale. So:

    input -> [conv+bn(+relu)] -> q  ...  path + shortcut -> relu -> q  ...  mean -> q -> fc -> q

Batch norm is folded the way Jacob et al. 2018 describe: the weights are quantized
after scaling by gamma / sqrt(running var); while batch norm still trains, the conv's
output is scaled back and normalised with the batch's statistics; once frozen, the
forward pass is exactly the folded conv with a bias, as in the exported file.

``fold`` writes the result back into the zoo architecture (batch norms gone, biases in
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
from .fake import ActivationQuantizer, fake_quantize_bias, fake_quantize_weight, weight_scale


class QuantConvBn(nn.Module):
    """conv -> batch norm (folded) -> optional ReLU -> int8 output."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu: bool, names: tuple[str, str]):
        super().__init__()
        self.conv, self.bn, self.relu = conv, bn, relu
        self.names = names  # where conv and bn live in the zoo module, for fold()
        self.out = ActivationQuantizer()
        self.bn_frozen = False
        self.source: list[ActivationQuantizer] = []  # the quantizer of the input (a list: not a submodule)

    def _factor(self) -> Tensor:
        return self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)

    def folded(self) -> tuple[Tensor, Tensor]:
        """The weights on the int8 grid and the bias, batch norm folded in with its running statistics."""
        factor = self._factor()
        weight = self.conv.weight * factor.reshape(-1, 1, 1, 1)
        bias = self.bn.bias - self.bn.running_mean * factor
        if self.conv.bias is not None:
            bias = bias + self.conv.bias * factor
        return fake_quantize_weight(weight), _quantize_bias(bias, self.source, weight)

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        weight, bias = self.folded()
        if self.training and not self.bn_frozen:
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
        self.bn.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.bn_frozen:
            self.bn.eval()
        return self


class QuantLinear(nn.Module):
    """The head: per-channel int8 weights (TFLite's default for FULLY_CONNECTED), int8 logits."""

    def __init__(self, linear: nn.Linear, name: str):
        super().__init__()
        self.linear, self.name = linear, name
        self.out = ActivationQuantizer()
        self.source: list[ActivationQuantizer] = []

    def folded(self) -> tuple[Tensor, Tensor]:
        weight = self.linear.weight
        return fake_quantize_weight(weight), _quantize_bias(self.linear.bias, self.source, weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.linear(x, *self.folded()))


def _quantize_bias(bias: Tensor, source: list[ActivationQuantizer], weight: Tensor) -> Tensor:
    if not source or not bool(source[0].seen):
        return bias
    return fake_quantize_bias(bias, source[0].qparams()[0], weight_scale(weight))


class QuantBlock(nn.Module):
    """A residual block: the path's convs, the shortcut, and the int8 sum after the ReLU."""

    def __init__(self, path: list[QuantConvBn], shortcut: nn.Module):
        super().__init__()
        self.path = nn.Sequential(*path)
        self.shortcut = shortcut  # Identity, a zero-padding PadShortcut, or a QuantConvBn projection
        self.out = ActivationQuantizer()

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.path(x) + self.shortcut(x)))


class QatResNet(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        net = copy.deepcopy(net)
        self.input = ActivationQuantizer()
        self.stem = QuantConvBn(net.conv1, net.bn1, True, ("conv1", "bn1"))
        self.maxpool = getattr(net, "maxpool", nn.Identity())  # same scale in and out: nothing to quantize
        self.blocks = nn.Sequential(*[
            _quant_block(block, f"{stage}.{i}")
            for stage in _stages(net) for i, block in enumerate(getattr(net, stage))
            if not isinstance(block, nn.Identity)  # a block pruning removed
        ])
        self.pool = ActivationQuantizer()
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
        self.head.source.append(self.pool)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.stem(self.input(x)))
        x = self.blocks(x)
        x = self.pool(x.mean(dim=(2, 3)))
        return self.head(x)

    def quantizers(self) -> dict[str, ActivationQuantizer]:
        return {name: m for name, m in self.named_modules() if isinstance(m, ActivationQuantizer)}

    def conv_bns(self) -> list[QuantConvBn]:
        return [m for m in self.modules() if isinstance(m, QuantConvBn)]


def _stages(net: nn.Module) -> list[str]:
    return [name for name in ("layer1", "layer2", "layer3", "layer4") if hasattr(net, name)]


def _quant_block(block: nn.Module, prefix: str) -> QuantBlock:
    kind = type(block).__name__
    if kind == "Bottleneck":
        convs = [("conv1", "bn1", True), ("conv2", "bn2", True), ("conv3", "bn3", False)]
    elif kind in ("BasicBlock", "CifarBlock"):
        convs = [("conv1", "bn1", True), ("conv2", "bn2", False)]
    else:
        raise ArchitectureError(f"quantization-aware training does not know the block {kind}",
                                "use a ResNet of the model zoo (edgeresnet models)")
    path = [QuantConvBn(getattr(block, c), getattr(block, b), relu, (f"{prefix}.{c}", f"{prefix}.{b}"))
            for c, b, relu in convs]
    shortcut = getattr(block, "downsample", None) or getattr(block, "shortcut", None) or nn.Identity()
    owner = "downsample" if hasattr(block, "downsample") else "shortcut"
    if isinstance(shortcut, nn.Sequential):  # a 1x1 projection and its batch norm
        shortcut = QuantConvBn(shortcut[0], shortcut[1], False, (f"{prefix}.{owner}.0", f"{prefix}.{owner}.1"))
    elif not isinstance(shortcut, (nn.Identity, PadShortcut)):
        raise ArchitectureError(f"quantization-aware training does not know the shortcut {type(shortcut).__name__}",
                                "use a ResNet of the model zoo (edgeresnet models)")
    return QuantBlock(path, shortcut)


def prepare(net: nn.Module) -> QatResNet:
    """A QAT copy of a zoo ResNet; its ranges still need a calibration pass (`calibrate_ranges`)."""
    return QatResNet(net)


@torch.no_grad()
def calibrate_ranges(qat: QatResNet, batches) -> None:
    """Start every range at the min/max of a few float batches, before training moves them."""
    quantizers = qat.quantizers().values()
    for q in quantizers:
        q.enabled = False
    qat.train()
    for conv in qat.conv_bns():  # statistics are observed, but batch norm must not change
        conv.bn.eval()
    for inputs in batches:
        qat(inputs)
    for q in quantizers:
        q.enabled = True
    qat.eval()


@torch.no_grad()
def fold(qat: QatResNet, like: nn.Module) -> nn.Module:
    """The zoo module ``like`` with the QAT weights: batch norms folded away, weights on the int8 grid."""
    net = copy.deepcopy(like).eval()
    for conv_bn in qat.conv_bns():
        conv_name, bn_name = conv_bn.names
        weight, bias = conv_bn.folded()
        conv = net.get_submodule(conv_name)
        conv.weight = nn.Parameter(weight.clone())
        conv.bias = nn.Parameter(bias.clone())
        parent, _, attr = bn_name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, attr, nn.Identity())
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
    unquantized values there. Converters rename and reorder tensors freely, and TFLite's
    calibrator logs some tensors after an in-place op has overwritten them, so the
    exporter finds a point by what flows through it instead of by name or statistics.
    """
    seen: dict[str, dict] = {}
    hooks = []
    for name, q in qat.quantizers().items():
        def record(module, args, output, name=name):
            x = args[0]
            means = x.mean(dim=(2, 3)) if x.ndim == 4 else x
            shape = [1, *x.shape[2:], x.shape[1]] if x.ndim == 4 else [1, x.shape[1]]
            seen[name] = {"shape": shape, "channel_means": means.tolist()}
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


def freeze_batch_norm(qat: QatResNet) -> None:
    for conv_bn in qat.conv_bns():
        conv_bn.freeze_bn()


def finish(qat: QatResNet, like: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the QAT module, its float network) once training is over."""
    qat.eval()
    return qat, fold(qat, like)
