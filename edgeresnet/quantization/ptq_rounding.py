"""Learned weight rounding for post-training quantization (AdaRound, Nagel et al. 2020).

Rounding every weight to its nearest int8 step minimises each weight's own error, not the
layer's: AdaRound chooses, per weight, to round up or down so that the layer's output on the
calibration images stays closest to the float network's. Per layer, in execution order:

    minimise  || act(conv(x_q, s * (floor(w / s) + h(V)))) - act(y_float) ||^2  +  lambda * sum(1 - |2 h(V) - 1|^beta)

where ``x_q`` is the layer's input in the simulated network (every earlier layer already
rounded), ``y_float`` the float network's output there, ``h`` a rectified sigmoid in [0, 1]
started at each weight's fractional part, and the regulariser (its ``beta`` annealed from 20
to 2) pushes every ``h`` to 0 or 1. The learned codes are written back as the layer's float
weights on the grid, so that the simulator, and the file made from it, hold exactly them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fake import weight_scale
from .tflite import QuantConvBn, QuantLinear

_ZETA, _GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)


def learn_rounding(
    qat: nn.Module,
    net: nn.Module,
    batches: list[Tensor],
    *,
    iterations: int = 300,
    batch_images: int = 32,
    reg_weight: float = 0.01,
    lr: float = 1e-3,
    seed: int = 0,
    progress=lambda done, total: None,
) -> None:
    """Round every conv's and the head's weights of ``qat`` to the codes AdaRound learns on ``batches``."""
    from .ptq import _float_module, _in_execution_order

    layers = _in_execution_order(qat, batches[0][:1])
    generator = torch.Generator().manual_seed(seed)
    for index, layer in enumerate(layers):
        inputs = _captured(qat, layer, batches, output=False)
        target = _captured(net.eval(), _float_module(net, layer), batches, output=True)
        with torch.enable_grad():
            codes = _learn(layer, inputs, target, iterations, batch_images, reg_weight, lr, generator)
        _write_codes(layer, codes)
        progress(index + 1, len(layers))


@torch.no_grad()
def _captured(model: nn.Module, module: nn.Module, batches: list[Tensor], output: bool) -> Tensor:
    """``module``'s input (or output) over every batch, each forward pass stopped right there."""
    from .ptq import hooked_passes

    seen: list[Tensor] = []
    hooked_passes(
        model,
        [module],
        batches,
        lambda index, layer, args, result: seen.append((result if output else args[0]).detach()),
        stop=True,
    )
    return torch.cat(seen)


def _apply(layer: QuantConvBn | QuantLinear, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    if isinstance(layer, QuantLinear):
        return F.linear(x, weight, bias)
    conv = layer.conv
    y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return F.relu(y) if layer.relu else y


def _learn(
    layer: QuantConvBn | QuantLinear,
    inputs: Tensor,
    target: Tensor,
    iterations: int,
    batch_images: int,
    reg_weight: float,
    lr: float,
    generator: torch.Generator,
) -> Tensor:
    """The learned integer codes of ``layer``'s (folded) weights."""
    with torch.no_grad():
        weight, _ = (t.detach() if t is not None else None for t in layer.folded_float())
        _, bias = layer.folded()  # quantized at the input's scale, as the file holds it
        bias = None if bias is None else bias.detach()
        scale = weight_scale(weight, layer.weight_max).reshape(-1, *[1] * (weight.ndim - 1))
        base = torch.floor(weight / scale)
        fraction = (weight / scale - base).clamp(0.01, 0.99)
        if isinstance(layer, QuantConvBn) and layer.relu:
            target = F.relu(target)
    # h(V) = fraction at the start: V = -log((zeta - gamma) / (fraction - gamma) - 1)
    v = nn.Parameter(-torch.log((_ZETA - _GAMMA) / (fraction - _GAMMA) - 1))
    optimizer = torch.optim.Adam([v], lr=lr)
    limit = layer.weight_max
    warmup = int(0.2 * iterations)
    for step in range(iterations):
        rows = torch.randint(len(inputs), (min(batch_images, len(inputs)),), generator=generator)
        soft = torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0, 1)
        codes = torch.clamp(base + soft, -limit, limit)
        loss = F.mse_loss(_apply(layer, inputs[rows], codes * scale, bias), target[rows])
        if step >= warmup:  # after a warm-up on the reconstruction alone, push every h to 0 or 1
            beta = 20 + (2 - 20) * (step - warmup) / max(1, iterations - warmup)
            loss = loss + reg_weight * (1 - (2 * soft - 1).abs().pow(beta)).sum() / soft.numel()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        hard = (torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0, 1) >= 0.5).float()
        codes = torch.clamp(base + hard, -limit, limit)
        # A channel's largest weight keeps its code (+-limit): it sets the channel's scale.
        nearest = torch.round(weight / scale)
        codes = torch.where(nearest.abs() == limit, nearest, codes)
        return codes * scale


@torch.no_grad()
def _write_codes(layer: nn.Module, grid: Tensor) -> None:
    """Make ``layer``'s folded float weights equal ``grid`` (on the int8 grid already), so that
    nearest rounding in the simulator and in the converters keeps exactly these codes."""
    if isinstance(layer, QuantLinear):
        layer.linear.weight.copy_(grid)
    elif layer.bn is None:
        layer.conv.weight.copy_(grid)
    else:
        layer.conv.weight.copy_(grid / layer._factor().reshape(-1, 1, 1, 1))
