"""Core ML W8A8 through coremltools.optimize.torch: its quantizers, trained; ct.convert reads them.

``LinearQuantizer`` inserts fake quantization with Core ML's scheme (int8 weights,
symmetric, per output channel; 8-bit activations, one scale per tensor) and fuses each
convolution with its batch norm, which then trains folded; ``finalize`` leaves the
quantize/dequantize pairs that ``ct.convert`` turns into an ML Program with integer
activations (iOS 17+). The same format as coreml-w8a8's post-training path
(export/coreml/w8a8.py), trained instead of only calibrated. Core ML runs only on macOS:
here the trained simulator is what can be measured.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

# coremltools' milestones: observers and fake quantization on from the first step, and
# never frozen by coremltools (batch norm is frozen by the qat stage, observers keep going).
NEVER = 1_000_000_000


def w8a8_quantizer(net: nn.Module, milestones: list[int]):
    """coremltools' ``LinearQuantizer`` over ``net`` with Core ML's W8A8 scheme (int8 weights,
    symmetric, per output channel; uint8 activations, one scale per tensor). ``milestones``:
    coremltools' steps at which observers start, fake quantization starts, observers stop and
    batch norm freezes. The qat stage trains through it; coreml-w8a8's export only calibrates."""
    from ..backends import import_coremltools

    import_coremltools()
    from coremltools.optimize.torch.quantization import (
        LinearQuantizer,
        LinearQuantizerConfig,
        ModuleLinearQuantizerConfig,
    )

    config = LinearQuantizerConfig(
        global_config=ModuleLinearQuantizerConfig(
            quantization_scheme="symmetric",
            weight_dtype="qint8",
            weight_per_channel=True,
            activation_dtype="quint8",
            milestones=milestones,
        )
    )
    return LinearQuantizer(net, config)


def prepare_for_training(net: nn.Module, calibration: Tensor, batch_size: int = 64) -> nn.Module:
    from ..backends import converter_quiet as _converter_quiet

    with _converter_quiet():
        quantizer = w8a8_quantizer(copy.deepcopy(net).eval(), milestones=[0, 0, NEVER, NEVER])
        prepared = quantizer.prepare(example_inputs=(calibration[:1],), inplace=True)
        quantizer.step()
        prepared.train()
        for conv in _conv_bns(prepared):  # observe the ranges without moving batch-norm statistics
            conv.freeze_bn_stats()
        with torch.no_grad():
            for batch in calibration.split(batch_size):
                prepared(batch)
        for conv in _conv_bns(prepared):
            conv.update_bn_stats()
    prepared.coreml_quantizer = quantizer  # finalize() needs it
    return prepared


def _conv_bns(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if hasattr(m, "freeze_bn_stats")]


def freeze_batch_norm(module: nn.Module) -> None:
    for conv in _conv_bns(module):
        conv.freeze_bn_stats()


def finish(module: nn.Module, like: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the finalized module, with quantize/dequantize pairs; the float network QAT started from)."""
    from ..backends import converter_quiet as _converter_quiet

    with _converter_quiet():
        finalized = module.coreml_quantizer.finalize(module, inplace=False).eval()
    return finalized, like
