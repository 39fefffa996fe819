"""OpenVINO int8 from the simulator's parameters, and the CPU plugin's arithmetic simulated in PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edgeresnet
from edgeresnet.quantization import tflite

from helpers import varied_batch_norms

ov = pytest.importorskip("openvino")
from edgeresnet.quantization import openvino_cpu, openvino_ir  # noqa: E402

SIZE = 16


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


# Without VNNI (AVX2, AVX-512 without VNNI), oneDNN's int8 kernels add u8 x s8 products in pairs
# with int16 saturation (vpmaddubsw): a different arithmetic, which the simulator does not model.
VNNI = bool(_cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def _qat(shortcut: str, seed: int = 0) -> tflite.QatResNet:
    torch.manual_seed(seed)
    net = varied_batch_norms(edgeresnet.models.create("resnet8", num_classes=10, shortcut=shortcut, width=8), seed)
    qat = tflite.prepare(net)
    tflite.calibrate_ranges(qat, torch.randn(128, 3, SIZE, SIZE).split(64))
    return qat


def _compile(model):
    # f32 pins the non-int8 parts (the CPU plugin picks bf16 on AMX hosts); one thread: shared CI cores.
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_ir_holds_the_simulator_parameters(shortcut):
    qat = _qat(shortcut)
    model = openvino_ir.to_openvino(qat, (1, 3, SIZE, SIZE))
    quantizers = qat.quantizers()
    fake_quantizes = {op.get_friendly_name(): op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"}
    assert set(fake_quantizes) == set(quantizers)  # a 4x4 map at 16x16: the mean has its own
    for name, op in fake_quantizes.items():
        scale, zero_point = quantizers[name].qparams()
        low = np.float32(-128 - int(zero_point)) * np.float32(scale)
        high = np.float32(127 - int(zero_point)) * np.float32(scale)
        ranges = [op.input_value(i).get_node().get_data().item() for i in range(1, 5)]
        assert op.get_levels() == 256
        assert ranges == [low, high, low, high], name

    # Weights: int8 constants times a per-channel scale, equal to the simulator's grid.
    layers = [*qat.conv_bns(), qat.head]
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "MatMul")]
    assert len(ops) == len(layers)
    for op, layer in zip(ops, layers):
        multiply = op.input_value(1).get_node()
        codes = multiply.input_value(0).get_node().input_value(0).get_node().get_data()
        scale = multiply.input_value(1).get_node().get_data()
        grid = layer.folded()[0].detach().numpy()
        assert codes.dtype == np.int8 and np.abs(codes).max() <= 127
        assert np.array_equal(codes.astype(np.float32) * scale, grid)


def test_convolutions_run_in_int8():
    qat = _qat("B")
    compiled = _compile(openvino_ir.to_openvino(qat, (1, 3, SIZE, SIZE)))
    runtime = [op.get_rt_info() for op in compiled.get_runtime_model().get_ordered_ops()]
    kinds = [(info["layerType"].astype(str), info["runtimePrecision"].astype(str)) for info in runtime]
    heavy = [precision for kind, precision in kinds if kind in ("Convolution", "FullyConnected")]
    assert len(heavy) == len(qat.conv_bns()) + 1  # every conv and the head
    assert all(precision in ("u8", "i8") for precision in heavy), kinds


@pytest.mark.skipif(not VNNI, reason="no VNNI: oneDNN's int8 kernels saturate pairs to int16, not simulated")
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_simulator_computes_what_the_cpu_plugin_computes(shortcut):
    qat = _qat(shortcut, seed=1)
    images = torch.randn(200, 3, SIZE, SIZE)
    model = openvino_ir.to_openvino(qat, (200, 3, SIZE, SIZE))
    ir = _compile(model)(images.numpy())[0]
    with torch.no_grad():
        simulated = openvino_cpu.cpu_simulator(qat)(images).numpy()
        tflite_rule = qat(images).numpy()
    step = openvino_ir.activation_range(qat.head.out)[2]
    difference = np.abs(ir - simulated)
    assert (ir.argmax(1) == simulated.argmax(1)).mean() >= 0.99
    assert difference.max() <= step * 1.001  # at most one output step, rarely (a tie rounded apart)
    assert (difference.max(1) == 0).mean() >= 0.95  # most images bit for bit
    # The TFLite rule (every FakeQuantize rounds) is measurably further from the file.
    assert (np.abs(ir - tflite_rule).max(1) == 0).mean() < (difference.max(1) == 0).mean()


def test_simulator_trains_straight_through():
    qat = _qat("B")
    qat.train()
    for part in qat.conv_bns():
        part.freeze_bn()
    simulator = openvino_cpu.cpu_simulator(qat)
    loss = simulator(torch.randn(8, 3, SIZE, SIZE)).logsumexp(1).mean()
    loss.backward()
    assert qat.stem.conv.weight.grad is not None and qat.stem.conv.weight.grad.abs().sum() > 0
    assert qat.head.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in qat.parameters())


def _general(make) -> torch.nn.Module:
    """A layout of another project, read as edgeresnet reads it (a GeneralResNet), calibrated."""
    from edgeresnet.loading import as_model

    torch.manual_seed(2)
    return as_model(make().eval()).module


@pytest.mark.skipif(not VNNI, reason="no VNNI: oneDNN's int8 kernels saturate pairs to int16, not simulated")
def test_general_layouts_of_the_same_ops_are_simulated():
    from foreign_layouts import CifarBasicBlock, CifarResNet

    net = _general(lambda: CifarResNet(CifarBasicBlock, [1, 1, 1, 1], w=8))
    assert openvino_ir.knows(net)
    qat = tflite.prepare(net)
    tflite.calibrate_ranges(qat, torch.randn(128, 3, 32, 32).split(64))
    images = torch.randn(100, 3, 32, 32)
    ir = _compile(openvino_ir.to_openvino(qat, (100, 3, 32, 32)))(images.numpy())[0]
    with torch.no_grad():
        simulated = openvino_cpu.cpu_simulator(qat)(images).numpy()
    assert (ir.argmax(1) == simulated.argmax(1)).mean() >= 0.99
    assert np.abs(ir - simulated).max() <= openvino_ir.activation_range(qat.head.out)[2] * 1.001


def test_ops_it_does_not_simulate_are_refused():  # pre-activation blocks
    from foreign_layouts import PreActBlock, PreActResNet

    net = _general(lambda: PreActResNet(PreActBlock, [1, 1, 1, 1], w=8))
    assert not openvino_ir.knows(net)
    with pytest.raises(NotImplementedError, match="does not cover"):
        openvino_cpu.cpu_simulator(tflite.prepare(net))


@pytest.mark.skipif(not VNNI, reason="no VNNI: oneDNN's int8 kernels saturate pairs to int16, not simulated")
def test_squeeze_excite_gates_are_simulated():
    from foreign_layouts import TimmBasicBlock, TimmResNet

    # 7x7 stem and max pool at 32x32: maps of 8, 4, 2 and 1 pixels, so gates over a mean and over
    # a single pixel, a 1x1 map before the head, identity and projection shortcuts after a gate.
    net = _general(lambda: TimmResNet(TimmBasicBlock, [2, 1, 1, 1], num_classes=10, channels=(8, 16, 32, 64),
                                      block_args=dict(attn_layer="se")))
    assert openvino_ir.knows(net)
    qat = openvino_ir.prepare(net)
    assert {m.fc1.weight_max for m in qat.modules() if isinstance(m, tflite.QuantSqueezeExcite)} == \
        {openvino_ir.FIRST_LAYER_WEIGHT_MAX}  # it reads signed codes: no int16 overflow without VNNI
    tflite.calibrate_ranges(qat, torch.randn(128, 3, 32, 32).split(64))
    images = torch.randn(200, 3, 32, 32)
    ir = _compile(openvino_ir.to_openvino(qat, (200, 3, 32, 32)))(images.numpy())[0]
    with torch.no_grad():
        simulated = openvino_cpu.cpu_simulator(qat)(images).numpy()
    step = openvino_ir.activation_range(qat.head.out)[2]
    assert (ir.argmax(1) == simulated.argmax(1)).mean() >= 0.99
    assert np.abs(ir - simulated).max() <= step * 1.001
    # Bit for bit on most images; without the head's input FakeQuantize over the 1x1 map the plugin
    # quantized the head's input on the fly, and half the images were a step off.
    assert (np.abs(ir - simulated).max(1) == 0).mean() >= 0.95
