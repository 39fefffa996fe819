"""The first end-to-end path: compress to TFLite and ONNX, verified, evaluated, reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgeresnet
from edgeresnet.data import open_dataset
from edgeresnet.export import parse_targets
from edgeresnet.errors import EdgeResNetError
from edgeresnet.manifest import check_artifact, read_manifest, sha256_file
from edgeresnet.runner.runtimes import open_artifact

from helpers import make_image_folder, run_cli


def test_demo_runs_with_no_model_and_no_data(tmp_path):
    """`edgeresnet compress --target tflite-int8` on the embedded ResNet-20 and images."""
    out = tmp_path / "demo"
    result = run_cli("compress", "--target", "tflite-int8", "--target", "openvino-int8", "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # stdout holds the JSON alone; progress (NNCF's too) went to stderr
    rows = {row["target"]: row for row in report["results"]}
    assert set(rows) == {"pytorch-fp32", "tflite-int8", "openvino-int8"}
    assert rows["openvino-int8"]["agreement"] >= 95
    assert report["data"]["samples"] == 300
    assert rows["pytorch-fp32"]["top1"] > 85  # the fine-tuned model on its own test images
    assert abs(rows["tflite-int8"]["delta_top1"]) <= 2.0
    assert rows["tflite-int8"]["agreement"] >= 95
    assert rows["tflite-int8"]["latency"]["p50_ms"] > 0

    manifest = read_manifest(out / "tflite-int8")
    artifact = out / "tflite-int8" / manifest.file
    assert sha256_file(artifact) == manifest.sha256
    assert manifest.input.dtype == "int8" and manifest.input.layout == "NHWC"
    assert manifest.input.shape == [1, 32, 32, 3] and manifest.input.scale > 0
    assert manifest.labels[:2] == ["airplane", "automobile"]
    assert manifest.baseline.top1 == pytest.approx(rows["pytorch-fp32"]["top1"])
    assert manifest.fidelity.agreement >= 98
    assert json.loads((out / "config.json").read_text())["targets"] == ["tflite-int8", "openvino-int8"]
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "log.txt", "openvino-int8", "reference-predictions.npz", "report.json", "run.json",
        "stages.json", "stages.png", "tflite-int8"]
    ir = read_manifest(out / "openvino-int8")
    assert sorted(ir.files) == ["resnet20-openvino-int8.bin", "resnet20-openvino-int8.xml"]
    assert ir.size_bytes == sum((out / "openvino-int8" / name).stat().st_size for name in ir.files)


def test_compress_tiny_model_to_fp32_targets_matches_pytorch(tmp_path):
    """Random weights, 2 classes: fp32 files must agree with PyTorch on every image."""
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=6))
    module = edgeresnet.models.create("resnet8", num_classes=2).eval()
    model = edgeresnet.load_model(module)
    before = model.fingerprint()
    targets = ("onnx", "tflite-fp32", "openvino-fp32")
    report = edgeresnet.compress(model, data, parse_targets(targets), tmp_path / "run")
    assert model.fingerprint() == before  # stages never change their input
    rows = {row.target: row for row in report.results}
    for target in targets:
        assert rows[target].agreement == 100.0
        manifest = read_manifest(tmp_path / "run" / target)
        assert manifest.fidelity.max_abs_diff < 1e-3
    # The artifact itself, run again through the runner, gives PyTorch's logits.
    images = np.stack([np.asarray(data.image(i), dtype=np.float32) for i in range(2)])
    from edgeresnet.data import normalize

    batch = normalize(images.astype(np.uint8), model.preprocess)
    tflite = open_artifact(tmp_path / "run" / "tflite-fp32" / "resnet8-tflite-fp32.tflite")
    np.testing.assert_allclose(tflite(batch), model.predictor()(batch), atol=1e-4)

    # Core ML runs only on macOS: on Linux the package is validated by its spec, and says so.
    report = edgeresnet.compress(model, data, parse_targets(["coreml-int8w"]), tmp_path / "coreml")
    row = report.results[1]
    assert row.top1 is None and row.note == "not run: needs macOS"
    manifest = read_manifest(tmp_path / "coreml" / "coreml-int8w")
    assert manifest.validation["runtime_check"] == "needs macOS" and "int8" in manifest.validation["weight_dtypes"]
    assert manifest.baseline is not None and manifest.fidelity is None
    check_artifact(manifest, tmp_path / "coreml" / "coreml-int8w")

    # A manifest guards every file of an artifact: an IR's weights too.
    ir = tmp_path / "run" / "openvino-fp32"
    check_artifact(read_manifest(ir), ir)
    weights = ir / "resnet8-openvino-fp32.bin"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(EdgeResNetError, match="does not match the sha256"):
        check_artifact(read_manifest(ir), ir)


def test_inspect_demo_model_as_json():
    result = run_cli("inspect", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["arch"] == "resnet20"
    assert summary["params"] == 269_722  # He et al. report 0.27M
    assert summary["stage_widths"] == [16, 32, 64]
    assert len(summary["residual_groups"]) == 3
    assert summary["residual_groups"][1]["padded_from"]["offset"] == 8


@pytest.mark.slow
def test_resnet20_int8_on_the_full_test_set_is_within_half_a_point(shared, tmp_path):
    """Done-when of the foundation issue: 10,000 test images, int8 within 0.5 points of FP32."""
    model = edgeresnet.load_model(shared / "models/cifar/resnet20_cifar10jpeg.pt")
    data = open_dataset(shared / "datasets/cifar10-jpeg/test.zip")
    train = open_dataset(shared / "datasets/cifar10-jpeg/train.zip")
    report = edgeresnet.compress(model, data, parse_targets(["tflite-int8"]), tmp_path / "run", train_data=train)
    fp32, int8 = report.results
    assert fp32.top1 == pytest.approx(88.59, abs=0.05)
    assert abs(int8.top1 - fp32.top1) <= 0.5, (int8.top1, fp32.top1)


def test_torchvision_layout_resnet18_compresses_to_int8(tmp_path):
    """The ImageNet stem (padded max-pool) converts to a full-integer file that LiteRT runs."""
    from edgeresnet.preprocess import Preprocess

    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=8, size=80))
    torch.manual_seed(0)  # fixed random weights: int8 near-ties are then the same every run
    model = edgeresnet.load_model(edgeresnet.models.create("resnet18", num_classes=2),
                                  preprocess=Preprocess.imagenet(input_size=64))
    targets = ["tflite-fp32,tflite-int8,openvino-fp16,openvino-int8"]
    report = edgeresnet.compress(model, data, parse_targets(targets), tmp_path / "run")
    rows = {row.target: row for row in report.results}
    assert rows["tflite-fp32"].agreement == 100.0
    for target in ("tflite-int8", "openvino-int8"):
        assert rows[target].agreement >= 98.0  # what the export itself checked on these images
    manifest = read_manifest(tmp_path / "run" / "tflite-int8")
    assert manifest.input.shape == [1, 64, 64, 3]
    assert manifest.preprocessing["resize"] == 73


def test_a_layer_no_converter_takes_fails_with_its_name(tmp_path):
    """An export the converters cannot take names the operator and the node, without a traceback."""
    from edgeresnet.models.cifar import CifarResNet

    class WithErfinv(CifarResNet):
        def forward(self, x):
            return super().forward(torch.special.erfinv(torch.tanh(x) * 0.5))

    model = edgeresnet.load_model(WithErfinv((1, 1, 1), 10))
    data = open_dataset(make_image_folder(tmp_path / "images", classes=[f"c{i}" for i in range(10)], per_class=1))
    for target, names in (("tflite-int8", "node erf_inv"), ("coreml-fp16", "op 'erfinv'")):
        with pytest.raises(EdgeResNetError, match=names):
            edgeresnet.compress(model, data, parse_targets([target]), tmp_path / target)
        assert not (tmp_path / target).exists()


def test_export_runs_pytorch_once_for_all_targets_of_one_model(tmp_path, monkeypatch):
    """The reference logits every file is verified against: one PyTorch pass, however many targets."""
    from edgeresnet.data import sample_pixels
    from edgeresnet.export import export
    from edgeresnet.models.model import Model

    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=2))
    model = edgeresnet.load_model(edgeresnet.models.create("resnet8", num_classes=2).eval())
    calls = []
    predictor = Model.predictor
    monkeypatch.setattr(Model, "predictor", lambda self, *a, **k: calls.append(self) or predictor(self, *a, **k))
    export(model, parse_targets(["onnx,openvino-fp32,openvino-fp16"]), tmp_path / "run",
           samples=sample_pixels(data, model.preprocess, 4))
    assert len(calls) == 1
