"""OpenVINO int8 from the simulator's own parameters: which layouts, and the IR.

``prepare(net)`` is the TFLite simulator (quantization/tflite.py) with the constraints OpenVINO's
CPUs put on it; ``to_openvino(qat, shape)`` writes it into an ``openvino.Model``: each
activation quantizer a FakeQuantize (256 levels) whose range is exactly the nudged grid,
(-128 - z) * s .. (127 - z) * s, named after the quantizer; weights as OpenVINO's compressed int8
form (i8 constant -> Convert -> Multiply by the per-channel scale), the simulator's codes as they
are; float biases. The CPU plugin runs every convolution and the head in int8 (u8 x i8), and
``openvino_cpu.py`` computes in PyTorch what it computes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models.cifar import PadShortcut
from . import tflite
from .fake import ACT_MAX, ACT_MIN, ActivationQuantizer, weight_scale

ACT_LEVELS = 256
# The weights of a conv reading signed data on a 7-bit grid: its input codes sit near 128 (a zero
# point in the middle of u8), and without VNNI two u8 x i8 products are summed in int16
# (vpmaddubsw), which full 8-bit weights overflow (measured: -1.45 points top-1 on the ResNet-20
# with AVX2 kernels from the first conv; a squeeze-and-excitation gate's first conv: 5% of gates
# one step off in the SE-ResNet-18's second block).
FIRST_LAYER_WEIGHT_MAX = 63


def prepare(net: nn.Module) -> nn.Module:
    """The TFLite simulator of ``net`` with the convs that read signed data (u8 codes around a
    zero point of about 128: the first conv's image, a squeeze-and-excitation gate's pooled
    path) on the 7-bit grid OpenVINO's CPUs without VNNI need: the parameters ``to_openvino``
    writes and ``cpu_simulator`` computes with."""
    qat = tflite.prepare(net)
    qat.conv_bns()[0].weight_max = FIRST_LAYER_WEIGHT_MAX
    for module in qat.modules():
        if isinstance(module, tflite.QuantSqueezeExcite):
            module.fc1.weight_max = FIRST_LAYER_WEIGHT_MAX
    return qat


def knows(net: nn.Module) -> bool:
    """Whether ``to_openvino`` and ``cpu_simulator`` build this module: the zoo's ResNets and the
    GeneralResNets of the same ops (conv stems, max pool or none, basic or bottleneck blocks with
    identity, projection or zero-pad shortcuts, squeeze-and-excitation gates), without grouped
    convolutions; not pre-activation, ECA gates or average-pool shortcuts (their ops are not
    simulated yet)."""
    from ..models.general import GeneralResNet

    if not tflite.knows(net) or any(m.groups != 1 for m in net.modules() if isinstance(m, nn.Conv2d)):
        return False
    return not isinstance(net, GeneralResNet) or simulates(tflite.prepare(net))


def simulates(qat: nn.Module) -> bool:
    """Whether every part of a TFLite simulator is one this module builds and simulates: the
    plain layouts, and those with squeeze-and-excitation gates on post-activation blocks."""
    return tflite.plain_layout(qat, gates=(tflite.QuantSqueezeExcite,))


def stem_layers(qat: tflite.QatResNet | tflite.QatGeneralResNet) -> list[nn.Module]:
    """The stem's convs, in order (one, or a deep stem's three)."""
    return list(qat.stem) if isinstance(qat.stem, nn.Sequential) else [qat.stem]


def check_covered(qat: nn.Module) -> None:
    if not simulates(qat):
        raise NotImplementedError(f"{type(qat).__name__}: a layout with ops OpenVINO's CPU simulation does not cover")


# -- parameters, read from the simulator --------------------------------------------------


def activation_range(q: ActivationQuantizer) -> tuple[np.float32, np.float32, np.float32, int]:
    """(low, high, scale, zero point): the FakeQuantize range that holds exactly the simulator's grid."""
    scale, zero_point = q.qparams()
    s, z = np.float32(scale.item()), int(zero_point)
    return np.float32(ACT_MIN - z) * s, np.float32(ACT_MAX - z) * s, s, z


@torch.no_grad()
def int8_weights(layer: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(int8 codes, per-channel scale, float bias or None) of a QuantConvBn or QuantLinear."""
    grid, bias = layer.folded()
    scale = weight_scale(layer.folded_float()[0], layer.weight_max)
    codes = torch.round(grid / scale.reshape(-1, *[1] * (grid.ndim - 1)))
    assert torch.equal(codes * scale.reshape(-1, *[1] * (grid.ndim - 1)), grid), "weights off the int8 grid"
    return (
        codes.to(torch.int8).numpy(),
        scale.numpy().astype(np.float32),
        None if bias is None else bias.numpy().astype(np.float32),
    )


# -- the IR --------------------------------------------------------------------------------


class _Builder:
    """Walks a QatResNet in forward order, emitting OpenVINO ops (opset13)."""

    def __init__(self, names: dict[ActivationQuantizer, str]):
        import openvino.opset13 as ops

        self.ops = ops
        self.names = names  # each FakeQuantize is named after its quantizer, for checks and debugging

    def const(self, value, dtype=np.float32):
        return self.ops.constant(np.asarray(value, dtype=dtype))

    def fake_quantize(self, x, q: ActivationQuantizer, suffix: str = ""):
        low, high, _, _ = activation_range(q)
        lo, hi = self.const(low), self.const(high)
        fq = self.ops.fake_quantize(x, lo, hi, lo, hi, ACT_LEVELS)
        fq.set_friendly_name(self.names[q] + suffix)
        return fq

    def weights(self, layer: nn.Module):
        """int8 constant -> Convert -> Multiply by the per-channel scale: OpenVINO's compressed
        int8 weights, which the CPU plugin reads as int8 as they are (no FakeQuantize rounding)."""
        codes, scale, bias = int8_weights(layer)
        shape = (-1,) + (1,) * (codes.ndim - 1)
        weight = self.ops.multiply(
            self.ops.convert(self.const(codes, np.int8), "f32"), self.const(scale.reshape(shape))
        )
        return weight, bias

    def conv(self, x, layer):
        conv = layer.conv
        if conv.groups != 1:
            raise NotImplementedError("grouped convolutions")
        weight, bias = self.weights(layer)
        pad = list(conv.padding)
        y = self.ops.convolution(x, weight, list(conv.stride), pad, pad, list(conv.dilation))
        if bias is not None:
            y = self.ops.add(y, self.const(bias.reshape(1, -1, 1, 1)))
        if layer.relu:
            y = self.ops.relu(y)
        return self.fake_quantize(y, layer.out)

    def shortcut(self, x, shortcut):
        if isinstance(shortcut, nn.Identity):
            return x
        if isinstance(shortcut, PadShortcut):
            s = shortcut.stride
            x = self.ops.strided_slice(
                x,
                self.const([0, 0, 0, 0], np.int64),
                self.const([0, 0, 0, 0], np.int64),
                self.const([1, 1, s, s], np.int64),
                [1, 1, 1, 1],
                [1, 1, 1, 1],
            )
            return self.ops.pad(
                x,
                self.const([0, shortcut.before, 0, 0], np.int64),
                self.const([0, shortcut.after, 0, 0], np.int64),
                "constant",
                self.const(0.0),
            )
        return self.conv(x, shortcut)

    def squeeze_excite(self, x, se):
        """MEAN -> 1x1 conv + ReLU -> 1x1 conv -> Sigmoid -> Multiply, each output a FakeQuantize
        (as the simulator has them; over a 1x1 map no mean)."""
        ops = self.ops
        height, width = x.get_output_partial_shape(0)[2:].to_shape()
        pooled = x
        if height * width != 1:
            pooled = self.fake_quantize(ops.reduce_mean(x, self.const([2, 3], np.int64), keep_dims=True), se.pool)
        gate = self.fake_quantize(ops.sigmoid(self.conv(self.conv(pooled, se.fc1), se.fc2)), se.gate)
        return self.fake_quantize(ops.multiply(x, gate), se.out)

    def max_pool(self, x, pool: nn.Module):
        if isinstance(pool, nn.Identity):
            return x
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
        return self.ops.max_pool(
            x,
            pair(pool.stride),
            pair(pool.dilation),
            pair(pool.padding),
            pair(pool.padding),
            pair(pool.kernel_size),
            "ceil" if pool.ceil_mode else "floor",
        ).output(0)


def to_openvino(qat: tflite.QatResNet, input_shape: tuple[int, ...]):
    """The simulator as an ``openvino.Model``: every activation quantizer a FakeQuantize with the
    nudged range (256 levels), weights int8 per output channel, biases float."""
    import openvino as ov

    check_covered(qat)
    b = _Builder({q: name for name, q in qat.quantizers().items()})
    ops = b.ops
    image = ops.parameter(list(input_shape), np.float32, name="input")
    x = b.fake_quantize(image, qat.input)
    for layer in stem_layers(qat):
        x = b.conv(x, layer)
    x = b.max_pool(x, qat.maxpool)
    for block in qat.blocks:
        y = x
        for layer in block.path:
            y = b.conv(y, layer)
        if isinstance(getattr(block, "attention", None), tflite.QuantSqueezeExcite):
            y = b.squeeze_excite(y, block.attention)
        x = b.fake_quantize(ops.relu(ops.add(y, b.shortcut(x, block.shortcut))), block.out)
    height, width = x.get_output_partial_shape(0)[2:].to_shape()
    x = ops.reduce_mean(x, b.const([2, 3], np.int64), keep_dims=False)
    if height * width != 1:
        x = b.fake_quantize(x, qat.pool)
    else:
        # Over a 1x1 map the simulator's mean does not round (see tflite_ops.global_mean), but the head
        # still needs a FakeQuantize in front: a float input makes the plugin's FullyConnected a
        # weight-compressed one that quantizes its input on the fly (logits one step off on half
        # the images). The values are on the last block's grid already, so this one changes nothing.
        x = b.fake_quantize(x, qat.blocks[-1].out if len(qat.blocks) else stem_layers(qat)[-1].out, "/head-input")
    weight, bias = b.weights(qat.head)
    logits = b.fake_quantize(ops.add(ops.matmul(x, weight, False, True), b.const(bias)), qat.head.out)
    logits.output(0).set_names({"output"})
    image.output(0).set_names({"input"})
    return ov.Model([logits], [image], "edgeresnet-int8")
