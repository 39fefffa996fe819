"""TFLite's int8 quantization formulas as differentiable PyTorch operations.

Activations: per tensor, asymmetric. The range [min, max] is widened to hold 0 (so that
zero padding is exact), scale = (max - min) / 255 and zero point = round(-128 - min /
scale), the nudging TFLite's quantizer applies to the ranges it is given.

Weights: per output channel, symmetric in [-127, 127] (zero point 0), scale = max|w| / 127:
what TFLite's quantizer computes from the float weights it converts, so a weight that is
already on this grid converts to exactly the same integers.

Rounding and clamping pass gradients straight through inside the range (STE).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import distributed

ACT_MIN, ACT_MAX = -128, 127
WEIGHT_MAX = 127
_TINY = 1e-8


class ActivationQuantizer(nn.Module):
    """Fake-quantizes a tensor to int8 with a range tracked as a moving average of batch min/max.

    ``observing`` (updated ranges while training) and ``enabled`` (quantize at all) are
    switched by the qat stage: ranges settle with the weights, then freeze; with
    ``enabled`` off the module passes its input through, which is the float graph the
    exporter converts.
    """

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("min", torch.tensor(0.0))
        self.register_buffer("max", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))
        self.observing = True
        self.enabled = True

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.observing:
            self.observe(x)
        if not self.enabled or not bool(self.seen):
            return x
        scale, zero_point = self.qparams()
        if x.dtype != torch.float32:  # the float64 evaluation of `exact`: torch's kernel takes float32 only
            q = torch.clamp(torch.round(x / scale) + zero_point, ACT_MIN, ACT_MAX)
            return x + ((q - zero_point) * scale - x).detach()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, ACT_MIN, ACT_MAX)

    @torch.no_grad()
    def observe(self, x: Tensor) -> None:
        low, high = torch.aminmax(x.detach())
        if distributed.is_syncing():  # under torchrun: the range of the whole global batch
            low = distributed.all_reduce(low.double(), "min").to(self.min.dtype)
            high = distributed.all_reduce(high.double(), "max").to(self.max.dtype)
        if not bool(self.seen):
            self.min.copy_(low)
            self.max.copy_(high)
            self.seen.fill_(True)
        else:
            self.min.lerp_(low, self.momentum)
            self.max.lerp_(high, self.momentum)

    def qparams(self) -> tuple[Tensor, Tensor]:
        low, high = self.min.clamp(max=0.0), self.max.clamp(min=0.0)
        scale = ((high - low) / (ACT_MAX - ACT_MIN)).clamp(min=_TINY)
        zero_point = torch.round(ACT_MIN - low / scale).clamp(ACT_MIN, ACT_MAX).to(torch.int32)
        return scale.detach().reshape(()), zero_point.reshape(())

    def extra_repr(self) -> str:
        return f"min={float(self.min):.4g}, max={float(self.max):.4g}"


def weight_scale(weight: Tensor, maximum: int = WEIGHT_MAX) -> Tensor:
    """Per output channel: max|w| / 127 (or / ``maximum``)."""
    return weight.detach().abs().flatten(1).amax(dim=1).clamp(min=_TINY) / maximum


def fake_quantize_weight(weight: Tensor, maximum: int = WEIGHT_MAX) -> Tensor:
    """Per output channel, symmetric int8 in [-127, 127]: on the grid TFLite's converter uses.
    ``maximum`` 63 is a 7-bit grid (OpenVINO's guard against int16 overflow on CPUs without VNNI)."""
    scale = weight_scale(weight, maximum)
    if weight.dtype != torch.float32:
        shape = (-1,) + (1,) * (weight.ndim - 1)
        q = torch.clamp(torch.round(weight / scale.reshape(shape)), -maximum, maximum)
        return weight + (q * scale.reshape(shape) - weight).detach()
    zero_point = torch.zeros(scale.shape, dtype=torch.int32, device=scale.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -maximum, maximum)


def fake_quantize_bias(bias: Tensor, input_scale: Tensor, weight_scale: Tensor) -> Tensor:
    """int32 with scale input_scale * weight_scale, as TFLite stores a conv's bias.

    The rounding is a fraction of an output step, but one applied to every value of a
    channel: left out, it flips the rounding of enough outputs to matter 20 layers on.
    """
    scale = (input_scale * weight_scale).detach()
    return bias + (torch.round(bias / scale) * scale - bias).detach()
