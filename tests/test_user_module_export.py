"""A user's own ResNet module (not a zoo class) exports to int8 files that load and pass verification.

Regression: a torchvision-layout module written differently from the zoo's (shortcut first,
`out = out + identity`, F.relu) gave a TFLite int8 file XNNPACK refused ("Node number 37
(TfLiteXNNPackDelegate) failed to prepare"). Its stem's padded max-pool reached onnx2tf as
a padded MaxPool, which became a PADV2 filled with -3.4e38, and the stem's int8 scale 1.3e36.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgeresnet
from edgeresnet.manifest import read_manifest

from helpers import make_image_folder


class UserBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = self.downsample(x) if self.downsample is not None else x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + identity
        return F.relu(out)


class UserResNet18(nn.Module):
    """torchvision's resnet18 state-dict keys, its own forward. `pool_first` pools before the
    stem's ReLU (the same function), so the max-pool's input can be negative."""

    def __init__(self, num_classes: int = 2, pool_first: bool = False):
        super().__init__()
        self.pool_first = pool_first
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            setattr(self, f"layer{i}", nn.Sequential(UserBlock(cin, cout, stride), UserBlock(cout, cout)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.bn1(self.conv1(x))
        x = F.relu(self.maxpool(x)) if self.pool_first else self.maxpool(F.relu(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _user_model(pool_first: bool = False) -> edgeresnet.Model:
    torch.manual_seed(0)  # fixed random weights: int8 near-ties are then the same every run
    module = UserResNet18(2, pool_first=pool_first).eval()
    model = edgeresnet.load_model(module, preprocess=edgeresnet.Preprocess(input_size=32))
    # Export the caller's class itself, whatever the loader makes of it (it may rebuild a module
    # it recognises as a zoo ResNet): arbitrary traceable modules must export.
    return model.replace(module=copy.deepcopy(module))


def test_user_module_exports_to_int8_files_that_pass_verification(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    # A few images and two classes: random weights leave int8 little margin on hundreds of images.
    data = edgeresnet.open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=8))
    targets = ["tflite-fp32", "tflite-int8", "openvino-int8"]
    start = time.perf_counter()
    report = edgeresnet.compress(_user_model(), data, edgeresnet.parse_targets(targets), tmp_path / "run",
                                 options=edgeresnet.CompressOptions(latency_runs=1, latency_warmup=0))
    elapsed = time.perf_counter() - start
    rows = {row.target: row for row in report.results}
    assert set(rows) == {"pytorch-fp32", *targets}
    assert rows["tflite-fp32"].agreement == 100.0  # the rewritten max-pool computes what PyTorch does
    for target in ("tflite-int8", "openvino-int8"):
        manifest = read_manifest(tmp_path / "run" / target)
        assert (tmp_path / "run" / target / manifest.file).is_file()
        # A module no layout describes has no simulator: the converters quantize it, and the file is
        # held against float PyTorch at the bar that catches a broken conversion.
        assert manifest.fidelity.reference == "pytorch-fp32" and manifest.quantization["method"] == "converter"
        assert manifest.fidelity.agreement >= manifest.fidelity.threshold == 95.0, manifest.fidelity

    # Every int8 tensor has a scale an activation can have (the bug: 1.3e36 on the stem), and
    # the file loads with the default delegate (XNNPACK) that refused it.
    path = tmp_path / "run" / "tflite-int8" / read_manifest(tmp_path / "run" / "tflite-int8").file
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    scales = [float(s) for t in interpreter.get_tensor_details() for s in t["quantization_parameters"]["scales"]]
    assert scales and max(scales) < 10, max(scales)
    print(f"user module: {', '.join(targets)} in {elapsed:.0f} s")


@pytest.mark.parametrize("pool_first", [False, True], ids=["after-relu", "before-relu"])
def test_padded_max_pool_becomes_an_exact_pad_and_pool(pool_first, tmp_path):
    """The ONNX graph every converter reads has no padded MaxPool left, and computes the same."""
    import onnx
    import onnxruntime

    from edgeresnet.export.onnx import export_onnx

    model = _user_model(pool_first)
    path = export_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    pools = [n for n in graph.node if n.op_type == "MaxPool"]
    pads = [onnx.helper.get_attribute_value(a) for a in pools[0].attribute if a.name == "pads"]
    assert len(pools) == 1 and not any(value for values in pads for value in values)
    (pad,) = [n for n in graph.node if n.op_type == "Pad" and n.output[0] == pools[0].input[0]]
    # Zeros after a ReLU (a plain PAD in TFLite); copies of the border where the input can be negative.
    assert onnx.helper.get_attribute_value(pad.attribute[0]) == (b"edge" if pool_first else b"constant")
    inputs = torch.randn(4, 3, 32, 32) * 3
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: inputs[:1].numpy()})
    with torch.no_grad():
        expected = model.module(inputs[:1]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
