"""Quantization-aware training for TFLite on ResNets written elsewhere (models.general).

Each construct a foreign layout brings (deep stem, average-pool shortcut, squeeze-excitation,
ECA, pre-activation blocks, a stem without max pool, any widths, one input channel) is
simulated as the ops onnx2tf and the TFLite converter make of it; the int8 file must then
predict what the QAT model predicts, at the bar tests/test_qat.py sets for zoo models.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import edgeresnet
from edgeresnet.data import open_dataset, sample_pixels
from edgeresnet.errors import ArchitectureError
from edgeresnet.export import export, parse_targets
from edgeresnet.models.general import GeneralResNet, Layout
from edgeresnet.preprocess import Preprocess
from edgeresnet.quantization import tflite as simulator
from edgeresnet.quantization.fake import ActivationQuantizer

from foreign_layouts import by_name
from helpers import make_image_folder, varied_batch_norms

SIZE = 32


def _layout(**fields) -> nn.Module:
    torch.manual_seed(0)
    return varied_batch_norms(GeneralResNet(Layout(num_classes=3, **fields)))


# name: (module builder, input size, ops the int8 file must hold for the construct under test)
CASES = {
    # catalogue entries, at 32x32: the ImageNet layouts end on a 1x1 map, where the exporter drops the means
    "timm_resnet50d": (lambda: by_name("timm_resnet50d").build(), SIZE, {"AVERAGE_POOL_2D"}),  # deep stem, avg down
    "timm_seresnet18": (lambda: by_name("timm_seresnet18").build(), SIZE, {"LOGISTIC", "MUL"}),
    "timm_ecaresnet": (lambda: by_name("timm_ecaresnet").build(), SIZE, {"LOGISTIC", "MUL", "RESHAPE"}),
    "timm_seresnext": (lambda: by_name("timm_seresnext").build(), SIZE, {"LOGISTIC", "AVERAGE_POOL_2D"}),  # groups
    "kuangliu_preact_resnet18": (lambda: by_name("kuangliu_preact_resnet18").build(), SIZE, {"MUL", "ADD"}),
    "tv_gray": (lambda: by_name("tv_gray").build(), SIZE, {"MAX_POOL_2D"}),  # one input channel
    "timm_resnet_d_bottleneck": (lambda: by_name("timm_resnet_d_bottleneck").build(), SIZE, set()),  # 8/12/20/40
    # layouts no catalogue entry has
    "preact_bottleneck_se_deep": (lambda: _layout(layers=(1, 1), planes=(4, 8), bottleneck=True, preact=True,
                                                  stem="deep", stem_widths=(4, 8), stem_width=8, stem_pool=False,
                                                  attention="se", attention_sizes=(4, 4), down="avg"),
                                  SIZE, {"MUL", "LOGISTIC"}),
    "preact_basic_max_pool": (lambda: _layout(layers=(1, 1), planes=(8, 16), preact=True, stem_width=8),
                              SIZE, {"MUL", "MAX_POOL_2D"}),
    "avg_down_odd_map": (lambda: _layout(layers=(1, 1, 1, 1), planes=(4, 8, 8, 8), stem="3x3", stem_pool=False,
                                         stem_width=8, down="avg"),
                         28, {"MIRROR_PAD", "AVERAGE_POOL_2D"}),  # 28 -> 14 -> 7 -> 4: a ceil-mode window
}


def _model(name: str) -> edgeresnet.Model:
    build, size, _ = CASES[name]
    return edgeresnet.load_model(build(), preprocess=Preprocess.imagenet(size))


def _data(tmp_path, model: edgeresnet.Model, images: int = 32):
    classes = tuple(f"c{i}" for i in range(model.num_classes))
    per_class = -(-images // len(classes))
    return open_dataset(make_image_folder(tmp_path / "images", classes=classes, per_class=per_class,
                                          size=model.preprocess.input_size))


@pytest.mark.parametrize("name", list(CASES))
def test_tflite_int8_file_predicts_what_the_qat_model_predicts(tmp_path, name):
    """A few QAT steps, then the int8 file: its ranges are the QAT model's, its answers too."""
    from ai_edge_litert.interpreter import Interpreter

    model = _model(name)
    assert isinstance(model.module, GeneralResNet)
    data = _data(tmp_path, model)
    trained, _ = edgeresnet.qat(model, edgeresnet.QatConfig(epochs=1, batch_size=8, limit=16, calibration_images=16),
                                data, scheme="tflite")
    assert isinstance(trained.module, simulator.QatGeneralResNet)
    pixels = sample_pixels(data, model.preprocess, 32)
    (artifact,) = export(trained, parse_targets(["tflite-int8"]), tmp_path / "run", samples=pixels,
                         calibration=pixels)
    interpreter = Interpreter(model_path=str(artifact.path))
    file_params = {(round(float(d["quantization"][0]), 9), int(d["quantization"][1]))
                   for d in interpreter.get_tensor_details() if d["dtype"] == np.int8}
    for point, quantizer in trained.module.quantizers().items():
        if bool(quantizer.seen):  # a mean over a 1x1 map has no op in the file, and its point sees nothing
            scale, zero_point = quantizer.qparams()
            assert (round(scale.item(), 9), zero_point.item()) in file_params, point
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert CASES[name][2] <= ops, ops
    assert artifact.manifest.fidelity.agreement >= 99.0  # against the QAT model, on 32 images


@pytest.mark.parametrize("name", ["preact_bottleneck_se_deep", "timm_ecaresnet", "avg_down_odd_map",
                                  "kuangliu_preact_resnet18"])
def test_folded_network_is_the_simulator_without_activation_rounding(name):
    model = _model(name)
    size = model.preprocess.input_size
    x = torch.randn(8, model.in_chans, size, size)
    qat_module = simulator.prepare_for_training(model.module, x)
    simulator.freeze_batch_norm(qat_module)
    folded = simulator.fold(qat_module, model.module)
    # Folded away, except a pre-activation norm on the residual stream (the file's MUL and ADD).
    left = [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(left) == sum(isinstance(m, simulator.QuantBatchNorm) for m in qat_module.modules())
    for q in qat_module.quantizers().values():
        q.enabled = False
    with torch.no_grad():
        assert torch.allclose(qat_module.eval()(x), folded(x), atol=1e-4)
        assert (folded(x).argmax(1) == model.module(x).argmax(1)).float().mean() >= 0.75


def test_logistic_output_keeps_tflites_fixed_scale():
    quantizer = simulator.LogisticOutput()
    quantizer.train()
    quantizer(torch.tensor([0.2, 0.3]))  # never observed: the kernel's output range is fixed
    scale, zero_point = quantizer.qparams()
    assert scale.item() == 1.0 / 256 and zero_point.item() == -128
    assert quantizer(torch.tensor([1.0])).item() == 255.0 / 256


def test_average_pool_rounds_int8_codes_half_away_from_zero():
    source = ActivationQuantizer()
    source.train()
    source(torch.tensor([0.0, 2.55]))  # scale 0.01, zero point -128
    pool = simulator.SameScale(nn.AvgPool2d(2, 2), "pool")
    pool.source.append(source)
    codes = torch.tensor([[[[-128.0, -127.0], [-127.0, -127.0]]]])  # sum -509: mean -127.25 -> -127
    ties = torch.tensor([[[[-128.0, -127.0], [-128.0, -127.0]]]])  # mean -127.5 -> -128 (away from zero)
    for given, expected in ((codes, -127), (ties, -128)):
        out = pool((given + 128) * 0.01)
        assert round(out.item() / 0.01) - 128 == expected


def test_edge_padded_pool_is_the_ceil_mode_pool():
    pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
    for size in (7, 8):
        x = torch.randn(2, 3, size, size)
        assert torch.allclose(simulator.EdgePaddedAvgPool(pool)(x), pool(x), atol=1e-6)


def test_a_module_no_layout_describes_is_refused_in_one_line(tmp_path):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = torch.relu(self.conv(x) + x)
            return self.fc(x.mean((2, 3)))

    model = edgeresnet.load_model(Residual().eval(), preprocess=Preprocess.imagenet(SIZE))
    assert model.arch == "module"
    data = _data(tmp_path, model, images=8)
    with pytest.raises(ArchitectureError, match="openvino") as error:
        edgeresnet.qat(model, edgeresnet.QatConfig(epochs=1, batch_size=8, calibration_images=8), data,
                       scheme="tflite")
    assert "\n" not in str(error.value) and "Residual" in str(error.value)
