"""Quantization-aware training for OpenVINO int8.

The layouts ``openvino_ir.knows`` (the zoo's, others of the same ops, squeeze-and-excitation
gates) train through our simulator of OpenVINO CPU's integer arithmetic (``openvino_cpu.py``,
on the TFLite simulator's parameters: ranges from calibration, then fixed; convs reading
signed codes on a 7-bit grid), and the exporter writes those parameters into the IR: the
file computes what training saw.

Other layouts (pre-activation, ECA gates, average-pool shortcuts, grouped convs) go through
NNCF. ``nncf.quantize`` on the PyTorch model inserts NNCF's FakeQuantize modules with its CPU
scheme (symmetric per-channel int8 weights, per-tensor int8 activations) and calibrates
them on the images; the result trains like any module, and ``openvino.convert_model``
turns its quantizers, with the ranges they learned, into the IR's FakeQuantize operations.
Batch norm stays a separate layer in PyTorch (OpenVINO folds it when it compiles).

At the end the trained weights are replaced by their quantized values. NNCF's forward
rounds ``(w - low) / scale`` while OpenVINO's converter rounds ``(w - low) / range * 255``:
the two disagree on weights that lie within a float rounding of a tie, and one such weight
shifts a whole layer of every image. On the grid both roundings are exact. On the fine-tuned
ResNet-20 this raised the IR's agreement with the NNCF model, FakeQuantize evaluated as its
formula, from 99.39% to 99.80% of the 10,000 test images.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from . import openvino_cpu, openvino_ir, tflite


def prepare_for_training(net: nn.Module, calibration: Tensor, batch_size: int = 64) -> nn.Module:
    """The layouts ``openvino_ir`` knows train through our simulator of OpenVINO CPU's arithmetic
    (openvino_cpu: the file then computes what training saw); others through NNCF's quantizers."""
    if openvino_ir.knows(net):
        qat = openvino_ir.prepare(net)
        tflite.calibrate_ranges(qat, calibration.split(batch_size))
        return openvino_cpu.cpu_simulator(qat)
    return _nncf_prepare(net, calibration, batch_size)


def _nncf_prepare(net: nn.Module, calibration: Tensor, batch_size: int) -> nn.Module:
    import nncf

    from ..backends import telemetry_declined

    load_nncf_kernels()

    with telemetry_declined(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on fake quantization
        batches = list(calibration.split(batch_size))
        return nncf.quantize(copy.deepcopy(net).eval(), nncf.Dataset(batches), subset_size=len(batches))


def load_nncf_kernels() -> None:
    """Build or load NNCF's C++ quantize kernels, safe against a process stopped while doing so.

    torch guards an extension's build directory with a plain `lock` file, taken on every load
    (also when nothing is rebuilt). A process stopped while holding it (Ctrl-C, SIGTERM,
    kill -9) leaves it behind, and from then on every QAT for OpenVINO waits NNCF's 60 s and
    fails, in every later run. Here each load holds an fcntl lock, which the kernel releases
    when its process dies however it dies: holding it, a `lock` file found is a leftover of a
    stopped edgeresnet process, and is removed. (A non-edgeresnet process building the same
    extension at that moment would lose its lock; both builds would then race.)
    """
    import fcntl
    import os
    from pathlib import Path

    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU, QuantizedFunctionsCPULoader

    # The first build compiles C++ for about a minute on 2 cores: more than NNCF's default
    # 60 s when the machine is busy. A user's own setting wins.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "1800")
    build = Path(QuantizedFunctionsCPULoader.get_build_dir())
    with open(build / "edgeresnet-load.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        (build / "lock").unlink(missing_ok=True)
        QuantizedFunctionsCPU.get("Quantize_forward")  # loads once per process


def freeze_batch_norm(module: nn.Module) -> None:
    """Batch norm normalises with its running statistics from now on, even in train mode."""
    if isinstance(module, openvino_cpu.CpuSimulator):
        tflite.freeze_batch_norm(module.qat)
        return
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d) and not getattr(layer, "frozen", False):
            layer.frozen = True
            layer.register_forward_pre_hook(_evaluate_mode)


def _evaluate_mode(layer: nn.Module, args) -> None:
    layer.training = False


def finish(module: nn.Module, like: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the trained module, its float network: for our simulator the QAT network folded, its
    weights on their grid; for NNCF's the network QAT started from, NNCF's weights not being plain layers)."""
    if isinstance(module, openvino_cpu.CpuSimulator):
        return module.eval(), tflite.fold(module.qat, like)
    return _weights_on_their_grid(module.eval()), like


def _weights_on_their_grid(module: nn.Module) -> nn.Module:
    """``module`` with every weight replaced by what its quantizer makes of it (a no-op in the forward)."""
    from nncf.torch.quantization.layers import BaseQuantizer

    parameters = {id(p) for p in module.parameters()}
    quantized: list[tuple[Tensor, Tensor]] = []

    def record(quantizer, inputs, output) -> None:
        if id(inputs[0]) in parameters:  # a weight quantizer: activations are not parameters
            quantized.append((inputs[0], output))

    hooks = [layer.register_forward_hook(record) for layer in module.modules() if isinstance(layer, BaseQuantizer)]
    try:
        with torch.no_grad():
            # Weight quantizers ignore the image: the smallest input every ResNet stem takes.
            module(torch.zeros(1, _input_channels(module), 32, 32))
            for weight, grid in quantized:
                weight.copy_(grid)
    finally:
        for hook in hooks:
            hook.remove()
    return module


def _input_channels(module: nn.Module) -> int:
    return next(layer.in_channels for layer in module.modules() if isinstance(layer, nn.Conv2d))
