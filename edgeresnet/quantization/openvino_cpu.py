"""OpenVINO CPU's integer arithmetic in PyTorch, for the IR ``openvino_ir.to_openvino`` writes.

``cpu_simulator(qat)`` computes what the CPU plugin computes for that model (2026.4, measured
on Sapphire Rapids: AMX and AVX-512 VNNI kernels give the same results):

    input      FakeQuantize -> u8 codes: round-half-even(clip(x) * (255 / (hi - lo)) + shift)
    conv       int32 sum of (u8 - zero point) x i8 (exact; zero padding is a real 0), to float32,
               times the dequantization scale (input scale * weight scale, one float32 product),
               plus the bias (a separate add, not an FMA); ReLU is the crop at 0
    conv out   u8 = round-half-even(y * input_scale + input_shift), saturated
    block      the residual add is fused into the block's last conv (oneDNN sum post-op), in
               the shortcut's units (LPT divides both FakeQuantize ranges by the shortcut
               scale): the path's FakeQuantize there only CROPS, it does not round (the plugin's
               "optimized formula" without rounding); the shortcut's u8 codes are added as
               they are; the block's FakeQuantize rounds once
    gate       squeeze-and-excitation: see ``_squeeze_excite`` and ``_gated_block_end``
    mean       float sum of the u8 codes / count, dequantized, FakeQuantize to u8 (over a 1x1
               map no mean: the head's input FakeQuantize keeps the FullyConnected int8)
    head       u8 x i8 -> int32, dequantized, bias, FakeQuantize rounded and dequantized by an
               FMA to float32 logits

The TFLite rule (every quantizer rounds) differs exactly at the path's quantizer of each block.
What is left: about 3 in 10^7 block outputs differ by one code (ties within a few float32 ulps
in the fused conv + sum chain, whose float order is not fully pinned down), which moves ~2% of
images' logits by one output step. Hosts without VNNI (AVX2, AVX-512 before Cascade Lake) run
other kernels: vpmaddubsw adds pairs of u8 x s8 products into int16 with saturation, which
the first conv's raw input codes overflow with 8-bit weights (-1.45 points on the ResNet-20).
The ptq and qat stages put the first conv's weights on a 7-bit grid (FIRST_LAYER_WEIGHT_MAX,
as NNCF does); then the saturation is not reached there, and this simulation agrees with
AVX2's kernels on 99.95% of the ResNet-20's test images (benchmarks/results/openvino-cpu-fidelity-avx2.json).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..models.cifar import PadShortcut
from . import tflite
from .fake import ACT_MAX, ActivationQuantizer, weight_scale
from .openvino_ir import ACT_LEVELS, activation_range, check_covered, stem_layers

# -- the CPU plugin's arithmetic -----------------------------------------------------------


def _f32(value) -> np.float32:
    return np.float32(value)


class _FQ:
    """A FakeQuantize as the CPU plugin stores it (fake_quantize.cpp): crop to [low, high],
    then ``x * input_scale + input_shift``, rounded, then ``* output_scale + output_shift``;
    every constant computed in float32 in the plugin's own order."""

    def __init__(self, low: np.float32, high: np.float32, out_low=None, out_high=None):
        out_low, out_high = (low, high) if out_low is None else (out_low, out_high)
        self.low, self.high = low, high
        self.input_scale = _f32(ACT_LEVELS - 1) / (high - low)
        self.input_shift = (-low * _f32(ACT_LEVELS - 1)) / (high - low)
        self.output_scale = (out_high - out_low) / _f32(ACT_LEVELS - 1)
        self.output_shift = out_low

    @classmethod
    def of(cls, q: ActivationQuantizer, unit: np.float32 | None = None) -> _FQ:
        """``q``'s FakeQuantize; with ``unit``, its ranges divided by it (LPT moves a dequantization
        Multiply through the FakeQuantize so: see ``_sum_post_op``)."""
        low, high, _, _ = activation_range(q)
        return cls(low, high) if unit is None else cls(low / unit, high / unit)

    def clamp_only(self):
        """The plugin's "optimized formula" without rounding (updateOptimizedFormula, do_rounding
        false): (scale, shift, low, high) with ``clip(x * scale + shift, low, high)`` = the
        FakeQuantize minus its rounding. Used for a FakeQuantize fused into a convolution before
        another post-op (the residual sum): the CPU plugin does not round there."""
        clo = _f32(np.rint(self.low * self.input_scale + self.input_shift))
        chi = _f32(np.rint(self.high * self.input_scale + self.input_shift))
        clo, chi = clo * self.output_scale + self.output_shift, chi * self.output_scale + self.output_shift
        scale = self.input_scale * self.output_scale
        shift = self.input_shift * self.output_scale + self.output_shift
        if abs(shift) < (chi - clo) * _f32(1e-5):  # the plugin drops a negligible shift
            shift = _f32(0)
        return scale, shift, min(clo, chi), max(clo, chi)


def _t(value) -> Tensor:
    return torch.tensor(np.float32(value), dtype=torch.float32)


def _round(x: Tensor) -> Tensor:
    """Round half to even (vcvtps2dq, and the plugin's RoundHTE), gradient straight through."""
    return x + (torch.round(x) - x).detach()


def _fma(a: Tensor, b, c) -> Tensor:
    """a * b + c rounded once to float32, as the JIT kernels' vfmadd (exact in float64 for float32
    inputs up to a double rounding that needs a tie at 2^-29 relative)."""
    if not torch.as_tensor(c).any():  # a * b + 0: one float32 rounding either way
        return a * b
    return (a.double() * torch.as_tensor(b).double() + torch.as_tensor(c).double()).float()


def _quantize(x: Tensor, fq: _FQ) -> Tensor:
    """u8 codes of a FakeQuantize that ends a fused op: crop, x * scale + shift, round half to
    even, saturate to [0, 255]."""
    x = torch.clamp(x, float(fq.low), float(fq.high))
    return torch.clamp(_round(_fma(x, _t(fq.input_scale), _t(fq.input_shift))), 0, ACT_LEVELS - 1)


class _Codes:
    """An int8 tensor as the plugin holds it: u8 codes (integer-valued float32, gradients straight
    through) and the quantizer whose FakeQuantize made them (u8 zero point = 128 + TFLite's)."""

    def __init__(self, codes: Tensor, q: ActivationQuantizer):
        self.codes, self.q = codes, q

    @property
    def zero_point(self) -> int:
        return ACT_MAX + 1 + activation_range(self.q)[3]

    @property
    def scale(self) -> np.float32:
        """The dequantization scale LPT derives: (output_high - output_low) / 255."""
        return _FQ.of(self.q).output_scale


def _int8_weight_codes(layer: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
    """(weight codes, their per-channel scale, bias) from ``folded()``, differentiable: the
    codes are the grid weights over their (constant) scale, rounded straight through."""
    grid, bias = layer.folded()
    scale = weight_scale(layer.folded_float()[0], layer.weight_max)
    shape = (-1,) + (1,) * (grid.ndim - 1)
    return _round(grid / scale.reshape(shape)), scale, bias


def _exact(op, x: Tensor, w: Tensor) -> Tensor:
    """op(x, w) for integer-valued x and w, exactly, as float32: the plugin's cvtdq2ps of the int32 sum.

    A float32 sum of integers is exact while no partial sum passes 2^24. Beyond that bound the
    weights are split as w = 16 * high + low (both at most 8 in magnitude, so each half's sums
    stay exact for any ResNet's fan-in) and the two exact halves are added in float32: one
    rounding of the exact sum, as the int32-to-float conversion rounds it. (float64 convolutions
    would be exact too, but run many times slower than float32's on CPUs.)"""
    bound = x.detach().abs().max() * w.detach().abs().flatten(1).sum(1).max()
    if bound < 2**24:
        return op(x, w)
    high = torch.round(w.detach() / 16)
    return op(x, high) * 16 + op(x, w - 16 * high)


def _conv_output(x: _Codes, layer) -> Tensor:
    """The convolution's fp32 output before its FakeQuantize: int32 sum of (u8 - zero point)
    times the int8 weights (zero padding is a real zero), times the dequantization scale
    (input scale * weight scale, folded by LPT in float32), plus the float bias."""
    import torch.nn.functional as F

    weight, weight_scale_, bias = _int8_weight_codes(layer)
    conv = layer.conv
    acc = _exact(
        lambda a, w: F.conv2d(a, w, None, conv.stride, conv.padding, conv.dilation, conv.groups),
        x.codes - x.zero_point,
        weight,
    )
    dq = (_t(x.scale) * weight_scale_.detach()).reshape(1, -1, 1, 1)
    y = acc * dq  # separate multiply and add: matches the kernels, an FMA does not
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def _conv(x: _Codes, layer) -> _Codes:
    """conv (+ bias, ReLU: absorbed by the crop of a FakeQuantize whose range starts at 0) -> u8."""
    y = _conv_output(x, layer)
    if layer.relu:
        y = torch.relu(y)
    return _Codes(_quantize(y, _FQ.of(layer.out)), layer.out)


def _sum_post_op(
    y: Tensor, path_q: ActivationQuantizer, shortcut: _Codes, out_q: ActivationQuantizer, relu: bool
) -> _Codes:
    """The last conv of a block with the residual add fused into it (the plugin's conv + sum).

    LPT rewrites ``deq(path) + deq(shortcut)`` in the shortcut's units: the path's FakeQuantize
    gets output range / shortcut scale, the shortcut's u8 codes are summed as they are (sum
    post-op, scale 1), and the block's FakeQuantize gets input range / shortcut scale. The
    path's FakeQuantize, fused before the sum, only crops: it does not round.
    """
    unit = shortcut.scale
    low, high, _, _ = activation_range(path_q)
    path = _FQ(low, high, low / unit, high / unit)
    scale, shift, clo, chi = path.clamp_only()
    t = torch.clamp(_fma(y, _t(scale), _t(shift)), float(clo), float(chi))
    v = t + (shortcut.codes - shortcut.zero_point)
    if relu:
        v = torch.relu(v)
    return _Codes(_quantize(v, _FQ.of(out_q, unit)), out_q)


def _shortcut(x: _Codes, shortcut: nn.Module) -> _Codes:
    import torch.nn.functional as F

    if isinstance(shortcut, nn.Identity):
        return x
    if isinstance(shortcut, PadShortcut):  # StridedSlice and Pad run on the u8 codes; the pad is a real 0
        s = shortcut.stride
        codes = F.pad(x.codes[:, :, ::s, ::s], (0, 0, 0, 0, shortcut.before, shortcut.after), value=x.zero_point)
        return _Codes(codes, x.q)
    return _conv(x, shortcut)


def _mean(x: _Codes, q: ActivationQuantizer, keepdim: bool = False) -> _Codes:
    """ReduceMean on the u8 codes (float sum / count), its input's dequantization and the
    pool's FakeQuantize fused into it."""
    mean = x.codes.sum(dim=(2, 3), keepdim=keepdim) / float(x.codes.shape[2] * x.codes.shape[3])
    real = mean * _t(x.scale) if x.zero_point == 0 else (mean - x.zero_point) * _t(x.scale)
    return _Codes(_quantize(real, _FQ.of(q)), q)


def _dequantize(x: _Codes) -> Tensor:
    return (x.codes - x.zero_point) * _t(x.scale)


def _squeeze_excite(x: _Codes, se) -> _Codes:
    """A squeeze-and-excitation gate on the path's u8 codes (measured against the plugin's
    runtime graph): ReduceMean with the pool's FakeQuantize; the two 1x1 convs in int8 as any
    conv, the second one's post-ops its FakeQuantize (which rounds here, unlike one before a
    sum), Sigmoid and the gate's FakeQuantize; then a Multiply of the two dequantized inputs
    with its FakeQuantize (one fused subgraph)."""
    pooled = x if x.codes.shape[2] * x.codes.shape[3] == 1 else _mean(x, se.pool, keepdim=True)
    logits = _conv(_conv(pooled, se.fc1), se.fc2)
    gate = _Codes(_quantize(torch.sigmoid(_dequantize(logits)), _FQ.of(se.gate)), se.gate)
    return _Codes(_quantize(_dequantize(x) * _dequantize(gate), _FQ.of(se.out)), se.out)


def _gated_block_end(gated: _Codes, block, block_input: _Codes) -> _Codes:
    """The residual add after a gate. A projection shortcut's conv takes the add as its sum
    post-op (the gate's codes summed as they are, the projection's FakeQuantize only
    cropping: ``_sum_post_op`` with the roles of the two branches swapped); with any other
    shortcut the add, ReLU and the block's FakeQuantize join the Multiply's subgraph, on the
    dequantized values."""
    if isinstance(block.shortcut, tflite.QuantConvBn):
        projection = block.shortcut
        return _sum_post_op(_conv_output(block_input, projection), projection.out, gated, block.out, relu=True)
    v = _dequantize(gated) + _dequantize(_shortcut(block_input, block.shortcut))
    return _Codes(_quantize(torch.relu(v), _FQ.of(block.out)), block.out)


def _head(x: _Codes, head) -> Tensor:
    """FullyConnected (u8 x i8 -> int32, dequantized, bias) with the logits' FakeQuantize fused:
    rounded, cropped and dequantized to float32 in the kernel."""
    weight, weight_scale_, bias = _int8_weight_codes(head)
    acc = _exact(lambda a, w: a @ w.t(), x.codes - x.zero_point, weight)
    y = acc * (_t(x.scale) * weight_scale_.detach()) + bias
    fq = _FQ.of(head.out)
    clo = float(np.rint(fq.low * fq.input_scale + fq.input_shift))
    chi = float(np.rint(fq.high * fq.input_scale + fq.input_shift))
    codes = torch.clamp(_round(_fma(y, _t(fq.input_scale), _t(fq.input_shift))), clo, chi)
    return _fma(codes, _t(fq.output_scale), _t(fq.output_shift))


class CpuSimulator(nn.Module):
    """What OpenVINO's CPU plugin computes for ``to_openvino(qat)``, in PyTorch.

    Shares the QAT module's parameters (training through it trains ``qat``); rounding passes
    gradients straight through. Forward values are the plugin's to the float32 rounding of
    each step, measured on an AVX-512/AMX host (see the module docstring for what remains).
    """

    def __init__(self, qat: tflite.QatResNet):
        super().__init__()
        check_covered(qat)
        self.qat = qat

    def forward(self, x: Tensor) -> Tensor:
        qat = self.qat
        a = _Codes(_quantize(x, _FQ.of(qat.input)), qat.input)
        for layer in stem_layers(qat):
            a = _conv(a, layer)
        if not isinstance(qat.maxpool, nn.Identity):  # max commutes with the monotonic codes
            a = _Codes(qat.maxpool(a.codes), a.q)
        for block in qat.blocks:
            y = a
            for layer in block.path[:-1]:
                y = _conv(y, layer)
            last = block.path[-1]
            if isinstance(getattr(block, "attention", None), tflite.QuantSqueezeExcite):
                a = _gated_block_end(_squeeze_excite(_conv(y, last), block.attention), block, a)
            else:
                a = _sum_post_op(_conv_output(y, last), last.out, _shortcut(a, block.shortcut), block.out, relu=True)
        if a.codes.shape[2] * a.codes.shape[3] == 1:  # no FakeQuantize after a mean over 1x1
            a = _Codes(a.codes.flatten(1), a.q)
        else:
            a = _mean(a, qat.pool)
        return _head(a, qat.head)


def cpu_simulator(qat: tflite.QatResNet) -> CpuSimulator:
    return CpuSimulator(qat)
