"""OpenVINO int8 through NNCF: its quantizers, trained; OpenVINO's converter reads them.

``nncf.quantize`` on the PyTorch model inserts NNCF's FakeQuantize modules with its CPU
scheme (symmetric per-channel int8 weights, per-tensor int8 activations) and calibrates
them on the images; the result trains like any module, and ``openvino.convert_model``
turns its quantizers, with the ranges they learned, into the IR's FakeQuantize operations.
Batch norm stays a separate layer in PyTorch (OpenVINO folds it when it compiles).
"""

from __future__ import annotations

import copy
import warnings

from torch import Tensor, nn


def prepare_for_training(net: nn.Module, calibration: Tensor, batch_size: int = 64) -> nn.Module:
    import nncf

    from ..export.openvino import telemetry_declined

    with telemetry_declined(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on fake quantization
        batches = list(calibration.split(batch_size))
        return nncf.quantize(copy.deepcopy(net).eval(), nncf.Dataset(batches), subset_size=len(batches))


def freeze_batch_norm(module: nn.Module) -> None:
    """Batch norm normalises with its running statistics from now on, even in train mode."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d) and not getattr(layer, "frozen", False):
            layer.frozen = True
            layer.register_forward_pre_hook(_evaluate_mode)


def _evaluate_mode(layer: nn.Module, args) -> None:
    layer.training = False


def finish(module: nn.Module, like: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the trained NNCF module, the float network QAT started from: NNCF's weights are not plain layers)."""
    return module.eval(), like
