"""TFLite int8 integer arithmetic, as LiteRT runs the exported file with XNNPACK, in PyTorch.

``exact_simulator(qat)`` computes what the int8 .tflite file written from a TFLite simulator
(quantization/tflite.py: QatResNet, QatGeneralResNet) computes when our runner runs it
(runner/tflite.py: LiteRT, default XNNPACK delegate, int8 input and output). Everything is read
from the simulator's parameters, the ones the exporter writes into the file: activation scales
and zero points (``ActivationQuantizer.qparams``, which the converter reproduces bit for bit),
per-channel weight codes and scales (``folded``), the float biases; the int32 biases and the
kernels' requantization constants are derived from those as the converter and XNNPACK derive
them.

    input      the runner's quantization: round-half-even(x / scale + zero point) in float32
               (numpy, NEP 50: the file's scale and zero point cast to float32), saturated
    CONV_2D    int32 sum of (x - input zero point) * w + int32 bias, converted to float32, times
    FC         the per-channel float32 scale (input scale * weight scale) / output scale, round
               half to even, + output zero point, saturated (fused ReLU: from the zero point):
               XNNPACK's qs8-qc8w "fp32" requantization. The int32 bias is the converter's:
               round(bias / (input scale * weight scale)) in float64
    ADD        XNNPACK's qs8 vadd: fixed-point multipliers a_scale / out_scale and b_scale /
               out_scale (float32 ratios, 21-bit, a shared shift from the larger's exponent),
               acc = bias + a * a_mult + b * b_mult, arithmetic shift right with the rounding
               constant 2^(shift-1) (round half up), + zero point, saturated
    MEAN       XNNPACK's qs8 mean: int32 sum of (x - zero point), float32 times
               input scale / (output scale * count), round half to even, + zero point
    PAD, STRIDED_SLICE, MAX_POOL_2D: on the int8 codes, padding with the zero point (a real 0)
    output     the runner's dequantization: float32 (y - zero point) * scale

The float fake-quant simulator (tflite.py) instead computes each conv in float from the
dequantized values and rounds once per quantizer, adds in float and rounds (half to even), and
averages in float: equal except at rounding ties of a fraction of a step, which compound.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.cifar import PadShortcut
from . import tflite
from .fake import ACT_MAX, ACT_MIN, ActivationQuantizer, weight_scale

# The converter widens a per-channel weight range narrower than this (quantization_utils:
# ExpandVeryNarrowRange): a dead channel gets scale 5e-7 / 127 instead of its own.
_NARROWEST_WEIGHT_RANGE = 1e-6


def simulates(qat: nn.Module) -> bool:
    """Whether ``exact_simulator`` covers every op of this TFLite simulator: QatResNet (any zoo
    layout), and QatGeneralResNet with conv stems (deep or not), max pool or none, plain
    (post-activation) blocks of any depth with identity, zero-pad or projection shortcuts;
    not pre-activation norms, attention gates or average-pool shortcuts."""
    return tflite.plain_layout(qat)


# -- parameters, as the converter and XNNPACK compute them ----------------------------------


def _qparams(q: ActivationQuantizer) -> tuple[np.float32, int]:
    scale, zero_point = q.qparams()
    return np.float32(scale.item()), int(zero_point)


def _source(layer: nn.Module) -> ActivationQuantizer:
    return next(q for q in layer.source if bool(q.seen))


@torch.no_grad()
def file_weights(layer: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(int8 weight codes, float32 per-channel scales, int32 bias or None) as the converter writes
    them for a QuantConvBn or QuantLinear: its grid weights requantized with max|w| / 127 (a range
    under 1e-6 widened), the bias over input scale * weight scale rounded in float64."""
    grid, bias = layer.folded()
    grid = grid.detach().double().numpy()
    peak = np.abs(grid.reshape(len(grid), -1)).max(axis=1)
    own = weight_scale(layer.folded_float()[0], layer.weight_max).detach().numpy().astype(np.float32)
    narrow = 2 * peak < _NARROWEST_WEIGHT_RANGE
    scale = np.where(narrow, np.float32(_NARROWEST_WEIGHT_RANGE / 2 / layer.weight_max), own).astype(np.float32)
    shape = (-1,) + (1,) * (grid.ndim - 1)
    codes = np.clip(np.round(grid / scale.astype(np.float64).reshape(shape)), -layer.weight_max, layer.weight_max)
    if bias is None:
        return codes.astype(np.int8), scale, None
    input_scale, _ = _qparams(_source(layer))
    b = bias.detach().double().numpy() / (np.float64(input_scale) * scale.astype(np.float64))
    return codes.astype(np.int8), scale, np.clip(np.round(b), -(2**31), 2**31 - 1).astype(np.int64)


def _float_to_int(x: Tensor) -> Tensor:
    return torch.round(x)  # half to even, as cvtps2dq / the magic-number trick


class _Codes:
    """An int8 tensor: its codes (int8 values held in a float32 tensor), scale and zero point."""

    def __init__(self, codes: Tensor, scale: np.float32, zero_point: int):
        self.codes, self.scale, self.zero_point = codes, np.float32(scale), int(zero_point)


def _saturate(values: Tensor, zero_point: int, relu: bool) -> Tensor:
    return values.clamp_(zero_point if relu else ACT_MIN, ACT_MAX)


class _Requantized(nn.Module):
    """CONV_2D or FULLY_CONNECTED as XNNPACK's qs8-qc8w kernels run it."""

    def __init__(self, layer: nn.Module, input_q: ActivationQuantizer):
        super().__init__()
        codes, scale, bias = file_weights(layer)
        self.register_buffer("weight", torch.from_numpy(codes.astype(np.float32)))
        self.register_buffer(
            "bias",
            torch.zeros(len(codes), dtype=torch.float64) if bias is None else torch.from_numpy(bias.astype(np.float64)),
        )
        s_in, self.z_in = _qparams(input_q)
        s_out, self.z_out = _qparams(layer.out)
        requant = (s_in * scale).astype(np.float32) / s_out  # float32: input * weight, then / output
        self.register_buffer("requant", torch.from_numpy(requant.astype(np.float32)))
        self.s_out = s_out
        # The largest |partial sum|: |x - zero point| <= 255, times the channel's sum of |w|, plus |bias|.
        self.bound = float(
            (255 * np.abs(codes.astype(np.float64)).reshape(len(codes), -1).sum(1) + np.abs(self.bias.numpy())).max()
        )
        self.relu = bool(getattr(layer, "relu", False))
        self.conv = layer.conv if isinstance(layer, tflite.QuantConvBn) else None  # its geometry, shared

    def forward(self, x: _Codes) -> _Codes:
        centred = x.codes - x.zero_point
        conv = self.conv
        if conv is not None:
            op = lambda a, w, b=None: F.conv2d(a, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)  # noqa: E731
            shape = (1, -1, 1, 1)
        else:
            op = lambda a, w, b=None: F.linear(a, w, b)  # noqa: E731
            shape = (1, -1)
        if self.bound < 2**24:  # every partial sum, bias included, an exact float32 integer
            acc = op(centred, self.weight, self.bias.float())
        else:  # int32 -> float32 rounds once: the exact sum in float64, then to float32
            high = torch.round(self.weight / 16)
            acc = op(centred, high).double().mul_(16).add_(op(centred, self.weight - 16 * high).double())
            acc = acc.add_(self.bias.reshape(shape)).clamp_(-(2**31), 2**31 - 1).float()
        y = _float_to_int(acc.mul_(self.requant.reshape(shape))).add_(self.z_out)
        return _Codes(_saturate(y, self.z_out, self.relu), self.s_out, self.z_out)


def _add_params(a_scale: np.float32, b_scale: np.float32, out_scale: np.float32, a_zero: int, b_zero: int):
    """XNNPACK's xnn_init_qs8_add_minmax_params: (a multiplier, b multiplier, bias, shift)."""
    a_ratio, b_ratio = np.float32(a_scale / out_scale), np.float32(b_scale / out_scale)
    exponent = int(np.float32(max(a_ratio, b_ratio)).view(np.uint32) >> 23) - 127
    shift = 20 - exponent
    if not 12 <= shift <= 30:
        raise NotImplementedError(f"an ADD whose scale ratio {max(a_ratio, b_ratio)} XNNPACK does not take")

    def multiplier(ratio: np.float32) -> int:  # ratio * 2^shift, rounded half to even (lrintf)
        return int(np.rint(np.float64(ratio) * 2.0**shift))

    a_mult, b_mult = multiplier(a_ratio), multiplier(b_ratio)
    bias = (1 << (shift - 1)) - a_mult * a_zero - b_mult * b_zero
    return a_mult, b_mult, bias, shift


def _add(a: _Codes, b: _Codes, out_q: ActivationQuantizer, relu: bool) -> _Codes:
    s_out, z_out = _qparams(out_q)
    a_mult, b_mult, bias, shift = _add_params(a.scale, b.scale, s_out, a.zero_point, b.zero_point)
    # Exact in float64 (|acc| < 2^31); floor of acc / 2^shift is the arithmetic shift right.
    acc = a.codes.double().mul_(a_mult).add_(b.codes.double(), alpha=b_mult).add_(bias)
    y = acc.mul_(2.0**-shift).floor_().float().add_(z_out)
    return _Codes(_saturate(y, z_out, relu), s_out, z_out)


def _mean(x: _Codes, out_q: ActivationQuantizer) -> _Codes:
    s_out, z_out = _qparams(out_q)
    count = x.codes.shape[2] * x.codes.shape[3]
    total = (x.codes - x.zero_point).sum(dim=(2, 3))  # exact: at most 255 * count
    scale = torch.tensor(np.float32(x.scale / np.float32(s_out * np.float32(count))))
    y = _float_to_int(total * scale).add_(z_out)
    return _Codes(_saturate(y, z_out, False), s_out, z_out)


def _shortcut(x: _Codes, shortcut: nn.Module, conv: _Requantized | None) -> _Codes:
    if isinstance(shortcut, nn.Identity):
        return x
    if isinstance(shortcut, PadShortcut):  # STRIDED_SLICE, then PAD with the zero point
        s = shortcut.stride
        codes = F.pad(x.codes[:, :, ::s, ::s], (0, 0, 0, 0, shortcut.before, shortcut.after), value=x.zero_point)
        return _Codes(codes, x.scale, x.zero_point)
    assert conv is not None  # a projection: the caller built its _Requantized
    return conv(x)


class ExactSimulator(nn.Module):
    """What the int8 TFLite file of ``qat`` computes under LiteRT with XNNPACK, in PyTorch.

    Forward: normalised NCHW float32 images in, float32 logits out (the runner's dequantized
    int8 output). Built from ``qat``'s parameters when constructed (build a new one after they
    change); no gradients (integer arithmetic throughout).
    """

    def __init__(self, qat: nn.Module):
        super().__init__()
        if not simulates(qat):
            raise NotImplementedError(
                f"{type(qat).__name__}: a layout with ops the exact TFLite simulation does not cover"
            )
        self.qat = qat
        stem = list(qat.stem) if isinstance(qat.stem, nn.Sequential) else [qat.stem]
        previous = qat.input
        self.stem = nn.ModuleList()
        for layer in stem:
            self.stem.append(_Requantized(layer, previous))
            previous = layer.out
        self.blocks = nn.ModuleList()
        for block in qat.blocks:
            path = nn.ModuleList()
            before = previous
            for layer in block.path:
                path.append(_Requantized(layer, before))
                before = layer.out
            shortcut = (
                _Requantized(block.shortcut, previous) if isinstance(block.shortcut, tflite.QuantConvBn) else None
            )
            self.blocks.append(nn.ModuleDict({"path": path, **({"shortcut": shortcut} if shortcut else {})}))
            previous = block.out
        # The head reads the MEAN's output, or over a 1x1 map (no MEAN) the last block's.
        self.head = _Requantized(qat.head, _source(qat.head))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        qat = self.qat
        scale, zero_point = _qparams(qat.input)
        codes = torch.clamp(torch.round(x.float() / torch.tensor(scale) + float(zero_point)), ACT_MIN, ACT_MAX)
        a = _Codes(codes, scale, zero_point)
        for layer in self.stem:
            a = layer(a)
        if not isinstance(qat.maxpool, nn.Identity):  # max commutes with the codes; padding never wins
            a = _Codes(qat.maxpool(a.codes), a.scale, a.zero_point)
        for block, parts in zip(qat.blocks, self.blocks):
            y = a
            for layer in parts["path"]:
                y = layer(y)
            a = _add(
                y,
                _shortcut(a, block.shortcut, parts["shortcut"] if "shortcut" in parts else None),
                block.out,
                relu=True,
            )
        pooled = a.codes.shape[2] * a.codes.shape[3] != 1  # over 1x1 the exporter drops the MEAN
        a = _mean(a, qat.pool) if pooled else _Codes(a.codes.flatten(1), a.scale, a.zero_point)
        y = self.head(a)
        return (y.codes - y.zero_point) * torch.tensor(y.scale)


def exact_simulator(qat: nn.Module) -> ExactSimulator:
    return ExactSimulator(qat).eval()


def exact_reference(model, target, image_input: bool = False):
    """What export should check a file of ``target`` against: for a tflite-int8 file with tensor
    input whose model's module is a TFLite simulator this module covers, the same Model with the
    exact simulator as its module; any other ``model`` as it is. (With ``image_input`` the file
    quantizes float pixels and normalises in int8 first: ops not simulated here.)"""
    if target.name != "tflite-int8" or image_input or not simulates(model.module):
        return model
    return model.replace(module=exact_simulator(model.module))
