"""Post-training quantization chosen in the TFLite int8 simulator (``quantization/tflite.py``).

A converter that calibrates by itself picks min/max ranges and rounds every weight to
the nearest int8 step. Here the simulator picks instead, on the calibration images, and the
exporter writes what it picked (the ranges into the file, the weights and biases on their
int8 grid), so that the file computes exactly the simulated network:

- **ranges** per activation tensor: ``minmax`` (what TFLite's calibrator takes), a
  ``percentile`` of the values, or ``mse``: the clipping that minimises the quantization
  error of the tensor's own values (a search over shrunk ranges).
- **bias correction** (Nagel et al. 2019, "empirical" as in AIMET): int8 weights and
  clipped ranges shift each output channel's mean; the mean shift of every conv's output
  against the float network on the calibration images is subtracted from its bias, layer
  by layer in execution order.
- **weight rounding** learned per layer (AdaRound, Nagel et al. 2020): ``ptq_rounding.py``.

The points that meet the outside keep min/max: the input (every pixel value must stay
representable) and the logits (clipping the largest one can turn a win into a tie).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fake import ACT_MAX, ACT_MIN, ActivationQuantizer
from .tflite import QuantConvBn, QuantLinear, freeze_batch_norm, prepare

RangeMethod = Literal["minmax", "percentile", "mse"]
_SAMPLES_PER_BATCH = 1 << 16  # values kept per tensor and batch for the range search
_SHRINK = torch.linspace(0.30, 1.0, 71)  # candidate ranges, as fractions of the observed one


@torch.no_grad()
def quantize_post_training(
    net: nn.Module,
    batches: list[Tensor],
    *,
    ranges: RangeMethod = "minmax",
    percentile: float = 99.99,
    bias_correction: bool = True,
    rounding: Literal["nearest", "adaround"] = "nearest",
    rounding_iterations: int = 300,
    prepare_simulator=prepare,
) -> nn.Module:
    """The simulator of ``net`` (not modified) with ranges, weights and biases chosen on ``batches``
    (normalised NCHW float tensors), batch norm frozen and folded: ready to export.
    ``prepare_simulator`` builds it (a runtime may constrain it: ``openvino_ir.prepare``)."""
    qat = prepare_simulator(net)
    freeze_batch_norm(qat)
    qat.eval()
    choose_ranges(qat, batches, ranges, percentile)
    if rounding == "adaround":
        from .ptq_rounding import learn_rounding

        learn_rounding(qat, net, batches, iterations=rounding_iterations)
    if bias_correction:
        correct_biases(qat, net, batches)
    return qat


def adjustable(qat: nn.Module) -> dict[str, ActivationQuantizer]:
    """The points whose range calibration chooses: all but the fixed-range ones (a sigmoid's)."""
    return {name: q for name, q in qat.quantizers().items() if type(q) is ActivationQuantizer}


@torch.no_grad()
def choose_ranges(qat: nn.Module, batches: Iterable[Tensor], method: RangeMethod, percentile: float = 99.99) -> None:
    """Set every adjustable point's range from the float values that reach it."""
    points = adjustable(qat)
    samples: dict[str, list[Tensor]] = {name: [] for name in points}
    extremes: dict[str, list[float]] = {}

    def recorder(name: str):
        def record(module, args):
            x = args[0].detach().flatten()
            low, high = torch.aminmax(x)
            seen = extremes.setdefault(name, [float(low), float(high)])
            seen[0], seen[1] = min(seen[0], float(low)), max(seen[1], float(high))
            if method != "minmax":
                keep = (
                    x
                    if x.numel() <= _SAMPLES_PER_BATCH
                    else x[torch.randint(x.numel(), (_SAMPLES_PER_BATCH,), generator=generator)]
                )
                samples[name].append(keep.clone())

        return record

    generator = torch.Generator().manual_seed(0)
    for q in qat.quantizers().values():
        q.enabled = False
    hooks = [q.register_forward_pre_hook(recorder(name)) for name, q in points.items()]
    try:
        for batch in batches:
            qat(batch)
    finally:
        for hook in hooks:
            hook.remove()
        for q in qat.quantizers().values():
            q.enabled = True
    outside = _outside_points(qat)
    for name, q in points.items():
        if name not in extremes:  # a point the data never reaches (a mean over a 1x1 map)
            continue
        low, high = extremes[name]
        if method != "minmax" and name not in outside:
            values = torch.cat(samples[name])
            low, high = (
                _percentile_range(values, low, high, percentile)
                if method == "percentile"
                else _mse_range(values, low, high)
            )
        q.min.fill_(low)
        q.max.fill_(high)
        q.seen.fill_(True)


def _outside_points(qat: nn.Module) -> set[str]:
    """The input's and the logits' quantizers, by name."""
    names = {id(q): name for name, q in qat.quantizers().items()}
    return {names[id(qat.input)], names[id(qat.head.out)]}


def _percentile_range(values: Tensor, low: float, high: float, percentile: float) -> tuple[float, float]:
    fraction = percentile / 100.0
    top = float(torch.quantile(values.float(), fraction)) if high > 0 else high
    bottom = float(torch.quantile(values.float(), 1.0 - fraction)) if low < 0 else low
    return min(bottom, 0.0) if low < 0 else low, max(top, 0.0) if high > 0 else high


def _mse_range(values: Tensor, low: float, high: float) -> tuple[float, float]:
    """The shrunk range (both ends by the same factor) with the least quantization error."""
    best, best_error = (low, high), float("inf")
    for factor in _SHRINK.tolist():
        candidate = (low * factor, high * factor)
        error = float(torch.mean((_fake_quantize(values, *candidate) - values) ** 2))
        if error < best_error:
            best, best_error = candidate, error
    return best


def _fake_quantize(values: Tensor, low: float, high: float) -> Tensor:
    """TFLite's int8 quantize-dequantize for the range [low, high] (nudged as ActivationQuantizer does)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / (ACT_MAX - ACT_MIN), 1e-8)
    zero_point = int(min(max(round(ACT_MIN - low / scale), ACT_MIN), ACT_MAX))
    return torch.fake_quantize_per_tensor_affine(values, scale, zero_point, ACT_MIN, ACT_MAX)


class _Stop(Exception):
    """Ends a forward pass once the layer being corrected has been seen."""


@torch.no_grad()
def correct_biases(qat: nn.Module, net: nn.Module, batches: list[Tensor]) -> None:
    """Subtract from each layer's bias the mean shift of its output (before the ReLU) in the
    simulated network against ``net`` in float, per channel, over ``batches``.

    Layer by layer in execution order, each measured with every correction upstream already
    made (corrected all at once, each layer would also cancel the drift its upstream layers
    are cancelling, and a deep network's corrections overshoot and grow). The network is run
    one segment at a time (the stem, each block, the head) from the previous segment's cached
    output, a pass stopping at the layer it measures: a few forward passes in all, not one per layer.
    """
    layers = _in_execution_order(qat, batches[0][:1])
    reference = dict(
        zip(
            layers,
            _output_means(
                net.eval(),
                [_float_module(net, layer) for layer in layers],
                batches,
                lambda module, args, output: output,
            ),
        )
    )
    activations = list(batches)
    for segment in qat.segments():
        inside = {id(m) for m in segment.modules()}
        for layer in (layer for layer in layers if id(layer) in inside):
            (simulated,) = _output_means(segment, [layer], activations, _simulated_output, stop=True)
            _add_to_bias(layer, reference[layer] - simulated)
        activations = [segment(x) for x in activations]


def _in_execution_order(qat: nn.Module, example: Tensor) -> list[nn.Module]:
    order: list[nn.Module] = []
    layers = [m for m in qat.modules() if isinstance(m, (QuantConvBn, QuantLinear))]
    hooked_passes(qat, layers, [example], lambda index, module, args, output: order.append(module))
    return list(dict.fromkeys(order))


def _output_means(
    model: nn.Module, modules: list[nn.Module], batches: list[Tensor], output_of, stop: bool = False
) -> list[Tensor]:
    """Per module, the mean of its output over the batches, per channel; ``stop``: end each
    forward pass at the (single) module."""
    sums: dict[int, Tensor] = {}  # by the module's index, once it has seen a batch

    def record(index: int, module, args, output) -> None:
        y = output_of(module, args, output)
        mean = y.mean(dim=(0, 2, 3)) if y.ndim == 4 else y.mean(dim=0)
        sums[index] = mean * len(y) if index not in sums else sums[index] + mean * len(y)

    hooked_passes(model, modules, batches, record, stop=stop)
    count = sum(len(batch) for batch in batches)
    return [sums[index] / count for index in range(len(modules))]


def hooked_passes(
    model: nn.Module, modules: list[nn.Module], batches: list[Tensor], record, stop: bool = False
) -> None:
    """Run ``model`` on every batch with ``record(index, module, args, output)`` called on each of
    ``modules``' outputs; ``stop``: end each pass right after the (single) module."""

    def hook(index: int):
        def call(module, args, output):
            record(index, module, args, output)
            if stop:
                raise _Stop

        return call

    hooks = [module.register_forward_hook(hook(i)) for i, module in enumerate(modules)]
    try:
        for batch in batches:
            try:
                model(batch)
            except _Stop:
                pass
    finally:
        for handle in hooks:
            handle.remove()


def _simulated_output(layer: QuantConvBn | QuantLinear, args, output) -> Tensor:
    """A simulated layer's output before its ReLU and quantizer: recomputed from its input."""
    x = args[0]
    if isinstance(layer, QuantLinear):
        return F.linear(x, *layer.folded())
    conv = layer.conv
    weight, bias = layer.folded()
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _float_module(net: nn.Module, layer: QuantConvBn | QuantLinear) -> nn.Module:
    """The module of ``net`` whose output is the float counterpart of ``layer``'s."""
    if isinstance(layer, QuantLinear):
        return net.get_submodule(layer.name)
    conv_name, bn_name = layer.names
    return net.get_submodule(bn_name or conv_name)


def _add_to_bias(layer: nn.Module, delta: Tensor) -> None:
    """Shift the layer's folded bias by ``delta`` (through batch norm's beta where there is one)."""
    if isinstance(layer, QuantLinear):
        layer.linear.bias.add_(delta)
    elif layer.bn is not None:
        layer.bn.bias.add_(delta)
    elif layer.conv.bias is not None:
        layer.conv.bias.add_(delta)
    else:
        layer.conv.bias = nn.Parameter(delta.clone())
