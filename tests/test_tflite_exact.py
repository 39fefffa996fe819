"""The exact TFLite simulation (quantization/tflite_exact.py) against the int8 file LiteRT runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import edgeresnet
from edgeresnet.data import normalize
from edgeresnet.export import export, parse_targets
from edgeresnet.models.general import GeneralResNet, Layout
from edgeresnet.preprocess import Preprocess
from edgeresnet.quantization import tflite, tflite_exact
from edgeresnet.runner.runtimes import open_artifact
from edgeresnet.stages.ptq import ptq

pytest.importorskip("onnx2tf")
from helpers import varied_batch_norms  # noqa: E402

pytest.importorskip("tensorflow")

SIZE = 32


def _pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _file_and_simulators(module: nn.Module, tmp_path, seed: int = 0):
    model = edgeresnet.load_model(module, preprocess=Preprocess.imagenet(SIZE))
    calibration, samples = _pixels(64, seed), _pixels(96, seed + 1)
    quantized = ptq(model, calibration, "tflite")
    (artifact,) = export(quantized, parse_targets(["tflite-int8"]), tmp_path / "out", samples=samples,
                         calibration=calibration)
    tensors = normalize(samples, model.preprocess)
    answer = open_artifact(artifact.path, 1)(tensors)
    with torch.no_grad():
        exact = tflite_exact.exact_simulator(quantized.module)(torch.from_numpy(tensors)).numpy()
    return quantized.module, answer, exact


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_exact_simulation_computes_the_files_logits(shortcut, tmp_path):
    module = varied_batch_norms(edgeresnet.models.create("resnet8", num_classes=10, shortcut=shortcut, width=8), seed=1)
    qat, answer, exact = _file_and_simulators(module, tmp_path)
    assert isinstance(qat, tflite.QatResNet)
    assert np.array_equal(answer.argmax(1), exact.argmax(1))
    assert np.array_equal(answer, exact)  # bit-identical logits, every image


def test_torchvision_layout_with_max_pool(tmp_path):
    # A 7x7 stride-2 stem, a max pool, a projection shortcut: QatGeneralResNet with plain blocks.
    module = varied_batch_norms(GeneralResNet(Layout(layers=(1, 1), planes=(8, 16), stem_width=8, num_classes=5)), seed=2)
    qat, answer, exact = _file_and_simulators(module, tmp_path, seed=3)
    assert isinstance(qat, tflite.QatGeneralResNet) and isinstance(qat.maxpool, nn.MaxPool2d)
    assert np.array_equal(answer, exact)


def test_what_is_not_covered_is_refused():
    module = varied_batch_norms(GeneralResNet(Layout(layers=(1,), planes=(8,), stem_width=8, preact=True, num_classes=3)), 0)
    qat = tflite.prepare(module)
    assert not tflite_exact.simulates(qat)
    with pytest.raises(NotImplementedError):
        tflite_exact.exact_simulator(qat)


def test_converter_weight_rules():
    """A dead channel (|w| < 5e-7) gets the converter's widened scale, and codes and bias follow."""
    module = varied_batch_norms(edgeresnet.models.create("resnet8", num_classes=3, width=8), seed=0)
    module.conv1.weight.data[0] *= 1e-8
    qat = tflite.prepare(module)
    tflite.calibrate_ranges(qat, [torch.randn(16, 3, SIZE, SIZE)])
    codes, scale, bias = tflite_exact.file_weights(qat.stem)
    assert scale[0] == np.float32(5e-7 / 127) and np.abs(codes[0]).max() < 127
    assert np.abs(codes[1:]).max(axis=(1, 2, 3)).min() == 127 and bias.dtype == np.int64
