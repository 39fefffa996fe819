"""Quantization-aware training: TFLite's arithmetic simulated, and its learned ranges in the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import edgeresnet
from edgeresnet.data import normalize, open_dataset, sample_pixels
from edgeresnet.export import export, parse_targets
from edgeresnet.errors import EdgeResNetError
from edgeresnet.quantization import tflite as simulator
from edgeresnet.quantization.fake import ActivationQuantizer, fake_quantize_weight
from edgeresnet.stages.qat import QatConfig, qat

from helpers import make_image_folder, varied_batch_norms


def _trained_resnet8(classes: int = 2) -> edgeresnet.Model:
    torch.manual_seed(0)
    return edgeresnet.load_model(varied_batch_norms(edgeresnet.models.create("resnet8", num_classes=classes)))


def test_activation_ranges_follow_tflite_nudging():
    quantizer = ActivationQuantizer()
    quantizer.train()
    quantizer(torch.tensor([0.5, 3.0]))  # a range above zero is widened to hold 0 exactly
    scale, zero_point = quantizer.qparams()
    assert scale.item() == pytest.approx(3.0 / 255)
    assert zero_point.item() == -128
    quantizer(torch.tensor([-1.0, 3.0]))  # moving average: 1% of the way to the new batch's range
    assert quantizer.min.item() == pytest.approx(0.5 + 0.01 * (-1.0 - 0.5))
    quantizer.eval()
    x = torch.linspace(-2, 5, 101)
    q = quantizer(x)
    scale, zero_point = quantizer.qparams()
    codes = torch.round(q / scale) + zero_point
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.min() >= -128 and codes.max() <= 127


def test_weights_are_on_a_symmetric_per_channel_grid():
    weight = torch.randn(4, 3, 3, 3)
    quantized = fake_quantize_weight(weight)
    scale = weight.abs().flatten(1).amax(1) / 127
    codes = quantized / scale.reshape(-1, 1, 1, 1)
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.abs().amax(dim=(1, 2, 3)).tolist() == pytest.approx([127.0] * 4)
    # Already on the grid, a weight quantizes to itself: what makes the exported file reproduce it.
    assert torch.equal(fake_quantize_weight(quantized), quantized)


def test_folded_network_is_the_simulator_without_activation_rounding():
    model = _trained_resnet8()
    x = torch.randn(8, 3, 32, 32)
    qat_module = simulator.prepare_for_training(model.module, x)
    folded = simulator.fold(qat_module, model.module)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    for q in qat_module.quantizers().values():
        q.enabled = False
    with torch.no_grad():
        # Biases keep their int32 rounding in both; only activation rounding is off here.
        assert torch.allclose(qat_module.eval()(x), folded(x), atol=1e-4)
        # And the fold itself loses only the weight rounding against the original network.
        assert (folded(x).argmax(1) == model.module(x).argmax(1)).float().mean() >= 0.75


def test_qat_trains_and_never_touches_its_input(tmp_path):
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=8))
    model = _trained_resnet8()
    before = model.fingerprint()
    trained, history = qat(model, QatConfig(epochs=2, batch_size=8, scheme="tflite", calibration_images=8), data)
    assert model.fingerprint() == before
    assert trained.qat.scheme == "tflite" and len(history) == 2
    assert all(conv.bn_frozen for conv in trained.module.conv_bns())  # frozen half-way
    assert not trained.module.training
    with pytest.raises(EdgeResNetError, match="already"):
        qat(trained, QatConfig(scheme="tflite"), data)
    with pytest.raises(EdgeResNetError, match="scheme"):
        qat(model, QatConfig(), data)


def test_learned_ranges_reach_the_tflite_file(tmp_path):
    """Every activation scale and zero point in the int8 file is the QAT model's own, and the
    file predicts what the QAT model predicts."""
    from ai_edge_litert.interpreter import Interpreter

    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=16))
    model = _trained_resnet8()
    pixels = sample_pixels(data, model.preprocess, 32)
    trained, _ = qat(model, QatConfig(epochs=1, batch_size=16, scheme="tflite", calibration_images=16, lr=0.01),
                     data)
    # The learned ranges differ from what calibrating the file on these images would give.
    (artifact,) = export(trained, parse_targets(["tflite-int8"]), tmp_path / "run", samples=pixels,
                         calibration=pixels)
    interpreter = Interpreter(model_path=str(artifact.path))
    file_params = {(round(float(d["quantization"][0]), 9), int(d["quantization"][1]))
                   for d in interpreter.get_tensor_details() if d["dtype"] == np.int8}
    for name, quantizer in trained.module.quantizers().items():
        scale, zero_point = quantizer.qparams()
        assert (round(scale.item(), 9), zero_point.item()) in file_params, name
    assert artifact.manifest.fidelity.agreement >= 99.0  # against the QAT model, on 32 images


def test_model_trained_for_tflite_refuses_another_runtimes_int8(tmp_path):
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=4))
    trained, _ = qat(_trained_resnet8(), QatConfig(epochs=1, batch_size=8, scheme="tflite", calibration_images=8),
                     data)
    pixels = sample_pixels(data, trained.preprocess, 4)
    with pytest.raises(EdgeResNetError, match="openvino-int8"):
        export(trained, parse_targets(["openvino-int8"]), tmp_path / "run", samples=pixels, calibration=pixels)
    # Float targets come from its folded float network and match it exactly.
    (onnx,) = export(trained, parse_targets(["onnx"]), tmp_path / "run", samples=pixels)
    assert onnx.manifest.fidelity.agreement == 100.0
    assert normalize(pixels, trained.preprocess).shape[0] == 4


def test_coreml_qat_converts_to_a_w8a8_package(tmp_path):
    """coremltools' quantizers, trained, become the package's quantize/dequantize operations."""
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=8))
    trained, _ = qat(_trained_resnet8(), QatConfig(epochs=1, batch_size=8, scheme="coreml", calibration_images=8),
                     data)
    pixels = sample_pixels(data, trained.preprocess, 4)
    (package,) = export(trained, parse_targets(["coreml-w8a8"]), tmp_path / "run", samples=pixels,
                        calibration=pixels)
    assert {"quantize", "dequantize"} <= set(package.manifest.validation["op_types"])
    assert package.manifest.source_model["qat"] == "coreml"


def test_openvino_qat_ends_with_weights_on_their_grid(tmp_path):
    """NNCF's forward and OpenVINO's converter round a weight at a tie differently; on the grid
    they agree. Moving the weights there must not change a single output."""
    from nncf.torch.quantization.layers import BaseQuantizer

    from edgeresnet.quantization import openvino as nncf_scheme

    model = _trained_resnet8()
    images = torch.randn(16, 3, 32, 32)
    module = nncf_scheme._nncf_prepare(model.module, images, 16)  # the path of layouts our simulator does not cover
    weights_before = {name: p.detach().clone() for name, p in module.named_parameters()
                      if p.dim() > 1 and "nncf" not in name}  # not the quantizers' scales
    with torch.no_grad():
        before = module(images)
    nncf_scheme._weights_on_their_grid(module)
    with torch.no_grad():
        assert torch.equal(module(images), before)
    moved = [name for name, p in module.named_parameters() if name in weights_before
             and not torch.equal(p, weights_before[name])]
    assert len(moved) == len(weights_before)  # every conv and the head
    # Quantizing a weight on the grid gives it back unchanged.
    parameters = {id(p): p for p in module.parameters()}
    checked = []
    for quantizer in (m for m in module.modules() if isinstance(m, BaseQuantizer)):
        quantizer.register_forward_hook(
            lambda q, inputs, output: checked.append(torch.equal(inputs[0], output)) if id(inputs[0]) in parameters
            else None)
    with torch.no_grad():
        module(images[:1])
    assert checked and all(checked)


def test_a_stopped_processs_leftover_kernel_lock_does_not_block_openvino_qat():
    """A `lock` file left by a process stopped while loading NNCF's kernels made every later
    QAT for OpenVINO wait 60 s and fail (found by tests/test_interruptions.py)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from nncf.torch.quantization.extensions import QuantizedFunctionsCPULoader

    stale = Path(QuantizedFunctionsCPULoader.get_build_dir()) / "lock"
    stale.touch()  # what kill -9 during a load leaves
    start = time.perf_counter()
    # A fresh process: this one may have loaded the kernels already, and loads them only once.
    subprocess.run([sys.executable, "-c", "from edgeresnet.quantization.openvino import load_nncf_kernels; "
                    "load_nncf_kernels()"], check=True, timeout=900, env={**os.environ, "NNCF_EXTENSION_LOAD_TIMEOUT": "30"})
    assert not stale.exists()
    assert time.perf_counter() - start < 300
