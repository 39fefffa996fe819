"""--image-input: files that take a uint8 RGB image and return probabilities, as apps feed them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgeresnet
from edgeresnet.assets import DEMO_DATA, DEMO_MODEL
from edgeresnet.data import normalize, open_dataset, sample_pixels
from edgeresnet.export import ExportConfig
from edgeresnet.manifest import read_manifest
from edgeresnet.preprocess import Preprocess
from edgeresnet.runner.runtimes import open_artifact

from helpers import make_image_folder, run_cli
from tflite_metadata_reader import read_metadata

TARGETS = ["onnx", "tflite-fp32", "tflite-int8", "openvino-fp32", "openvino-int8", "coreml-fp16"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo ResNet-20 on its 300 images, every runtime, through the CLI as a user runs it."""
    out = tmp_path_factory.mktemp("image") / "run"
    result = run_cli("export", "--target", ",".join(TARGETS), "--image-input", "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, {row["target"]: row for row in json.loads(result.stdout)["results"]}


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def test_manifests_describe_a_pixel_input_and_probabilities(demo_run):
    out, rows = demo_run
    for target in TARGETS[1:]:
        manifest = read_manifest(out / target)
        assert manifest.image_input, target
        assert manifest.input.dtype == "uint8" and manifest.input.shape == [1, 32, 32, 3], manifest.input
        assert manifest.input.layout.startswith("NHWC")
        if manifest.runtime != "coreml":  # Core ML runs on macOS only
            assert rows[target]["agreement"] >= 98.0
    # The int8 file quantizes its input with scale 1 and zero point 0: the pixels go in unchanged.
    tflite_int8 = read_manifest(out / "tflite-int8")
    assert (tflite_int8.input.scale, tflite_int8.input.zero_point) == (1.0, 0)
    assert tflite_int8.output.dtype == "float32" and tflite_int8.output.shape == [1, 10]
    for target in ("tflite-fp32", "openvino-fp32"):
        assert rows[target]["agreement"] == 100.0
        assert read_manifest(out / target).fidelity.max_abs_diff < 1e-4  # probabilities, not logits
    # The intermediate stays what every converter reads: normalised tensor in, logits out.
    onnx = read_manifest(out / "onnx")
    assert not onnx.image_input and onnx.input.dtype == "float32" and onnx.input.layout == "NCHW"


def test_runner_feeds_pixels_to_what_the_manifest_says_takes_them(demo_run):
    out, _ = demo_run
    model = edgeresnet.load_model(DEMO_MODEL)
    pixels = sample_pixels(open_dataset(DEMO_DATA), model.preprocess, 8, seed=3)
    expected = _softmax(model.predictor()(normalize(pixels, model.preprocess)))
    for target in ("tflite-fp32", "openvino-fp32"):
        manifest = read_manifest(out / target)
        runtime = open_artifact(out / target / manifest.file)  # image_input read from the manifest beside it
        assert runtime.image_input and runtime.input_layout == "NHWC"
        probabilities = runtime(pixels)
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    plain = open_artifact(out / "onnx" / read_manifest(out / "onnx").file)
    assert not plain.image_input


def test_tflite_metadata_carries_labels_and_normalisation(demo_run):
    out, _ = demo_run
    manifest = read_manifest(out / "tflite-int8")
    meta = read_metadata(out / "tflite-int8" / manifest.file)
    assert meta["labels"] == manifest.labels[:10] == ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                       "frog", "horse", "ship", "truck"]
    # Normalisation happens inside: the Task Library is told to feed raw pixels.
    assert meta["input"]["mean"] == [0.0] * 3 and meta["input"]["std"] == [1.0] * 3
    assert meta["input"]["color_space"] == "RGB" and meta["input"]["max"] == [255.0] * 3
    assert "0.485" in meta["input"]["description"]  # the normalisation baked in, said in words
    assert meta["output"]["name"] == "probability" and meta["name"] == "resnet20"


def test_openvino_ir_embeds_preprocessing_and_labels(demo_run):
    import openvino as ov

    out, _ = demo_run
    manifest = read_manifest(out / "openvino-int8")
    ir = ov.Core().read_model(str(out / "openvino-int8" / manifest.file))
    assert ir.input(0).get_element_type() == ov.Type.u8 and list(ir.input(0).shape) == [1, 32, 32, 3]
    assert ir.get_rt_info(["model_info", "labels"]).astype(str).split() == manifest.labels
    assert "Softmax" in {op.get_type_name() for op in ir.get_ops()}


def test_coreml_package_is_an_image_classifier(demo_run):
    out, _ = demo_run
    manifest = read_manifest(out / "coreml-fp16")
    assert manifest.validation["classifier"] and manifest.validation["labels"] == manifest.labels
    assert manifest.input.name == "image" and manifest.output.name == "classLabel_probs"


def test_bgr_model_with_unequal_std_matches_pytorch(tmp_path):
    """The baked-in steps reorder channels and normalise per channel exactly as data.normalize."""
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=4))
    torch.manual_seed(0)
    spec = Preprocess(input_size=32, resize=None, mean=(0.2, 0.5, 0.7), std=(0.1, 0.3, 0.25), channel_order="BGR")
    model = edgeresnet.load_model(edgeresnet.models.create("resnet8", num_classes=3), preprocess=spec)
    targets = edgeresnet.parse_targets(["tflite-fp32,openvino-fp32"])
    options = edgeresnet.CompressOptions(export=ExportConfig(image_input=True), latency_runs=2, latency_warmup=0)
    edgeresnet.compress(model, data, targets, tmp_path / "run", options=options)
    pixels = sample_pixels(data, spec, 12)
    expected = _softmax(model.predictor()(normalize(pixels, spec)))
    for target in ("tflite-fp32", "openvino-fp32"):
        manifest = read_manifest(tmp_path / "run" / target)
        assert manifest.fidelity.max_abs_diff < 1e-5
        runtime = open_artifact(tmp_path / "run" / target / manifest.file)
        np.testing.assert_allclose(runtime(pixels), expected, atol=1e-5)
        # Fed in the wrong channel order it differs by far more than the tolerance: the check above can fail.
        assert np.abs(runtime(pixels[..., ::-1].copy()) - expected).max() > 1e-4


def test_int8_tflite_io_types():
    assert ExportConfig().tflite_io == ("int8", "int8")
    assert ExportConfig(io_dtype="uint8").tflite_io == ("uint8", "uint8")
    assert ExportConfig(image_input=True).tflite_io == ("uint8", "float32")  # an app's pixels in, probabilities out
    assert ExportConfig(image_input=True, io_dtype="int8").tflite_io == ("uint8", "int8")


def test_exports_are_byte_identical(tmp_path):
    """Offline and deterministic: the same model, images and options give the same files."""
    from edgeresnet.export import export

    model = edgeresnet.load_model(DEMO_MODEL)
    pixels = sample_pixels(open_dataset(DEMO_DATA), model.preprocess, 128, seed=1)
    targets = edgeresnet.parse_targets(["onnx,tflite-int8,openvino-int8,coreml-w8a8"])
    hashes = []
    for attempt in ("first", "second"):
        artifacts = export(model, targets, tmp_path / attempt, samples=pixels, calibration=pixels,
                           config=ExportConfig(image_input=True))
        hashes.append({artifact.target.name: artifact.manifest.files for artifact in artifacts})
    assert hashes[0] == hashes[1]
    assert len(hashes[0]["openvino-int8"]) == 2  # the .xml and the .bin
