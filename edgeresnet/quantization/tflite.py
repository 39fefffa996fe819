"""The TFLite qat scheme: a ResNet rebuilt with fake quantization exactly where TFLite's int8 kernels round.

``prepare`` builds the simulator of a network (tflite_layouts.py, of the ops in tflite_ops.py
and tflite_general_ops.py); ``calibrate_ranges`` starts its ranges from a few float batches.

``fold`` writes the result back into the source architecture (batch norms gone, biases in
the convs, weights on the int8 grid): the float graph that export converts, while
``ranges`` gives the activation ranges that the TFLite exporter puts into the file
instead of calibrating its own (``signatures``: how it finds each of them there).

The simulator's parts are re-exported here, where the other simulators, ptq and the tests
look for them.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..errors import ArchitectureError
from ..models.cifar import PadShortcut
from .tflite_general_ops import EdgePaddedAvgPool as EdgePaddedAvgPool
from .tflite_general_ops import LogisticOutput as LogisticOutput
from .tflite_general_ops import QuantBatchNorm as QuantBatchNorm
from .tflite_general_ops import QuantEfficientChannelAttention as QuantEfficientChannelAttention
from .tflite_general_ops import QuantGeneralBlock as QuantGeneralBlock
from .tflite_general_ops import QuantSqueezeExcite as QuantSqueezeExcite
from .tflite_general_ops import SameScale as SameScale
from .tflite_general_ops import as_pair
from .tflite_layouts import QatGeneralResNet as QatGeneralResNet
from .tflite_layouts import QatResNet as QatResNet
from .tflite_ops import OTHER_SCHEMES_HINT
from .tflite_ops import QuantBlock as QuantBlock
from .tflite_ops import QuantConvBn as QuantConvBn
from .tflite_ops import QuantLinear as QuantLinear


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
        OTHER_SCHEMES_HINT,
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
    return isinstance(op, nn.AvgPool2d) and op.ceil_mode and not op.count_include_pad and not any(as_pair(op.padding))


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


# What the qat stage calls, the same for every scheme (see quantization/schemes.py).


def prepare_for_training(net: nn.Module, calibration: Tensor, batch_size: int = 64) -> QatResNet | QatGeneralResNet:
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
