"""Core ML export: what the .mlpackage declares (Linux can convert and read it, not run it)."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgeresnet
from edgeresnet.data import normalize
from edgeresnet.errors import ConversionError, EdgeResNetError, VerificationError
from edgeresnet import backends
from edgeresnet.export.coreml import check as coreml_check
from edgeresnet.export.coreml import convert as coreml_export
from edgeresnet.manifest import artifact_sha256
from edgeresnet.models import create
from edgeresnet.preprocess import Preprocess

if importlib.util.find_spec("coremltools") is not None:
    backends.import_coremltools()  # without its TensorFlow probe: seconds faster
ct = pytest.importorskip("coremltools")

LABELS = ("a", "b", "c")
REPO = Path(__file__).resolve().parent.parent


def _model(preprocess: Preprocess | None = None, labels=LABELS):
    torch.manual_seed(0)
    return edgeresnet.load_model(create("resnet8", num_classes=3), labels=labels, preprocess=preprocess)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def packages(model, tmp_path_factory):
    """One package per (precision, image_input), exported once for the module."""
    root = tmp_path_factory.mktemp("coreml")
    before = model.fingerprint()
    training = model.module.training
    made = {
        (precision, image): coreml_export.export_coreml(
            model, root / f"{precision}-{'image' if image else 'tensor'}.mlpackage", precision, image_input=image)
        for precision in ("fp16", "int8w") for image in (False, True)
    }
    assert model.fingerprint() == before, "export changed the input model's weights"
    assert model.module.training == training, "export changed the input model's mode"
    return made


def test_fp16_tensor_package(packages):
    info = coreml_check.inspect_coreml(packages["fp16", False])
    assert info["inputs"] == [{"name": "input", "type": "multiArray", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert info["outputs"] == [{"name": "logits", "type": "multiArray", "shape": [1, 3], "dtype": "float32"}]
    assert set(info["weight_dtypes"]) == {"fp16"}
    assert info["int8_granularity"] is None and info["activation_dtypes"] == []
    assert not info["classifier"]
    assert {"conv", "linear"} <= set(info["op_types"])
    assert not any(op.startswith("constexpr_") for op in info["op_types"])
    assert info["author"] == "edgeresnet" and "resnet8" in info["short_description"]
    assert info["metadata"]["labels"] == '["a", "b", "c"]'
    assert '"input_size": 32' in info["metadata"]["preprocessing"]


def test_int8w_package_quantizes_every_kernel_per_channel(packages):
    info = coreml_check.inspect_coreml(packages["int8w", False])
    assert set(info["weight_dtypes"]) == {"int8", "fp16"}  # fp16: biases, never quantized
    assert info["kernel_dtypes"] == ["int8"]  # every conv and linear kernel, the small stem and head too
    assert info["weights"]["int8"] == 8  # resnet8: 7 convs and 1 linear
    assert info["int8_granularity"] == "per_channel"
    assert "constexpr_affine_dequantize" in info["op_types"]
    assert info["opset"] == "CoreML6"  # iOS 16: the first with int8 weights
    fp16 = coreml_check.inspect_coreml(packages["fp16", False])
    assert info["size_bytes"] < fp16["size_bytes"]


@pytest.mark.parametrize("precision", ["fp16", "int8w"])
def test_image_input_is_a_classifier(packages, precision):
    info = coreml_check.inspect_coreml(packages[precision, True])
    assert info["inputs"] == [{"name": "image", "type": "image", "shape": [32, 32], "color_layout": "RGB"}]
    assert info["classifier"] and info["labels"] == list(LABELS)
    assert {o["name"]: o["type"] for o in info["outputs"]} == {"classLabel": "string", "classLabel_probs": "dictionary"}
    assert {"softmax", "classify"} <= set(info["op_types"])


def test_image_input_equal_std_uses_image_scale_and_bgr(tmp_path):
    # Equal std: ImageType's one scale is exact, so the normalisation is its mul/add.
    preprocess = Preprocess(input_size=32, mean=(0.5, 0.4, 0.3), std=(0.25, 0.25, 0.25), channel_order="BGR")
    model = _model(preprocess, labels=None)
    path = coreml_export.export_coreml(model, tmp_path / "bgr.mlpackage", "fp16", image_input=True)
    info = coreml_check.inspect_coreml(path)
    assert info["inputs"][0]["color_layout"] == "BGR"
    assert not info["classifier"]
    assert info["outputs"] == [{"name": "probabilities", "type": "multiArray", "shape": [1, 3], "dtype": "float32"}]
    assert {"mul", "add", "softmax"} <= set(info["op_types"])
    checked = coreml_check.validate_coreml(path, precision="fp16", image_input=True, labels=None, input_size=32)
    assert checked["input"]["layout"] == "NHWC (BGR image)"


def test_validate_returns_a_manifest_entry(packages):
    from edgeresnet.manifest import TensorSpec

    checked = coreml_check.validate_coreml(
        packages["int8w", True], precision="int8w", image_input=True, labels=LABELS, input_size=32)
    assert checked["labels"] == list(LABELS) and checked["classifier"]
    assert "int8" in checked["weight_dtypes"]
    TensorSpec(**checked["input"])
    if platform.system() != "Darwin":
        assert checked["runtime_check"] == "needs macOS"


@pytest.mark.parametrize(
    "key, expect, message",
    [
        (("fp16", False), dict(precision="int8w", image_input=False, labels=None, input_size=32), "int8"),
        (("int8w", False), dict(precision="fp16", image_input=False, labels=None, input_size=32), "fp16"),
        (("fp16", False), dict(precision="fp16", image_input=True, labels=None, input_size=32), "image input"),
        (("fp16", True), dict(precision="fp16", image_input=True, labels=LABELS, input_size=64), "64x64"),
        (("fp16", True), dict(precision="fp16", image_input=True, labels=("x", "y", "z"), input_size=32), "labels"),
        (("fp16", True), dict(precision="fp16", image_input=True, labels=None, input_size=32), "no classifier"),
        (("fp16", False), dict(precision="fp16", image_input=False, labels=("x", "y", "z"), input_size=32), "metadata"),
    ],
)
def test_validate_rejects_a_mismatch(packages, key, expect, message):
    with pytest.raises(VerificationError, match=message) as caught:
        coreml_check.validate_coreml(packages[key], **expect)
    assert "\n" not in str(caught.value)


def test_export_is_byte_identical(model, packages, tmp_path):
    """Same process and a fresh one (another hash seed): every file of the package is equal."""
    first = packages["int8w", True]
    again = coreml_export.export_coreml(model, tmp_path / "again.mlpackage", "int8w", image_input=True)
    assert _files(first) == _files(again)

    script = (
        "import sys, torch, edgeresnet\n"
        "from pathlib import Path\n"
        "from edgeresnet.models import create\n"
        "from edgeresnet.export.coreml import export_coreml\n"
        "torch.manual_seed(0)\n"
        "m = edgeresnet.load_model(create('resnet8', num_classes=3), labels=('a', 'b', 'c'))\n"
        "export_coreml(m, Path(sys.argv[1]), 'int8w', image_input=True)\n"
    )
    other = tmp_path / "fresh" / first.name  # the manifest's hash covers the package's own name too
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONWARNINGS="ignore")
    subprocess.run([sys.executable, "-c", script, str(other)], check=True, env=env, cwd=REPO,
                   capture_output=True, timeout=300)
    assert _files(first) == _files(other)
    assert artifact_sha256(first) == artifact_sha256(other)


def _files(package: Path) -> dict[str, bytes]:
    return {p.relative_to(package).as_posix(): p.read_bytes() for p in sorted(package.rglob("*")) if p.is_file()}


class _Erfinv(nn.Module):
    def forward(self, x):
        return torch.special.erfinv(torch.tanh(x))


def test_unsupported_layer_is_a_one_line_conversion_error(tmp_path):
    model = _model()
    module = model.copy_module()
    module.layer2[0].relu = _Erfinv()
    with pytest.raises(ConversionError) as caught:
        coreml_export.export_coreml(model.replace(module=module), tmp_path / "bad.mlpackage", "fp16")
    text = str(caught.value)
    assert "erfinv" in text and "layer2.0.relu" in text and "not implemented" in text
    assert "\n" not in text and "Traceback" not in text
    assert list(tmp_path.iterdir()) == []  # no half-written package left behind


def test_output_must_be_an_mlpackage(model, tmp_path):
    with pytest.raises(EdgeResNetError, match="mlpackage"):
        coreml_export.export_coreml(model, tmp_path / "model.mlmodel", "fp16")
    with pytest.raises(EdgeResNetError, match="precision"):
        coreml_export.export_coreml(model, tmp_path / "model.mlpackage", "int4")


class _TorchBackedMLModel:
    """Stands in for a loaded Core ML model on Linux: predicts with the PyTorch module."""

    def __init__(self, model, image_input):
        self.model, self.image_input = model, image_input

    def predict(self, feeds):
        with torch.inference_mode():
            if not self.image_input:
                return {"logits": self.model.module.eval()(torch.from_numpy(feeds["input"])).numpy()}
            pixels = np.asarray(feeds["image"])[None]  # an RGB PIL image
            x = normalize(pixels, self.model.preprocess)
            probs = torch.softmax(self.model.module.eval()(torch.from_numpy(x)), 1)[0].numpy()
            return {"classLabel": LABELS[int(probs.argmax())],
                    "classLabel_probs": {label: float(p) for label, p in zip(LABELS, probs)}}


@pytest.mark.parametrize("image_input", [False, True])
def test_macos_branch_compares_with_pytorch(model, packages, monkeypatch, image_input):
    """The macOS-only prediction path, with Core ML's runtime replaced by PyTorch."""
    info = coreml_check.inspect_coreml(packages["fp16", image_input])  # the real spec, read before faking
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(coreml_check, "inspect_coreml", lambda path: info)
    monkeypatch.setattr(ct.models, "MLModel", lambda path, **kw: _TorchBackedMLModel(model, image_input))
    samples = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    checked = coreml_check.validate_coreml(
        packages["fp16", image_input], precision="fp16", image_input=image_input, labels=LABELS,
        input_size=32, model=model, samples=samples)
    assert checked["runtime_check"] == "passed"
    assert checked["fidelity"]["agreement"] == 100.0 and checked["fidelity"]["samples"] == 6


def test_w8a8_package_has_integer_activations_and_a_simulated_check(tmp_path):
    """coreml-w8a8 on Linux: calibrated in PyTorch with Core ML's scheme, converted, checked by its spec."""
    from edgeresnet.assets import DEMO_DATA, DEMO_MODEL
    from edgeresnet.data import open_dataset
    from edgeresnet.manifest import read_manifest

    model = edgeresnet.load_model(DEMO_MODEL)
    before = model.fingerprint()
    report = edgeresnet.compress(model, open_dataset(DEMO_DATA), edgeresnet.parse_targets(["coreml-w8a8"]),
                                 tmp_path / "run", options=edgeresnet.CompressOptions(latency_runs=2))
    assert model.fingerprint() == before  # quantization worked on a copy
    assert report.results[1].note == "not run: needs macOS"
    manifest = read_manifest(tmp_path / "run" / "coreml-w8a8")
    checked = manifest.validation
    assert checked["opset"] == "CoreML7"  # activation quantize ops need iOS 17
    assert checked["int8_granularity"] == "per_channel" and "int8" in checked["weight_dtypes"]
    assert checked["activation_dtypes"] and set(checked["activation_dtypes"]) <= {"int8", "uint8"}
    assert {"quantize", "dequantize"} <= set(checked["op_types"])
    simulated = checked["simulated_fidelity"]  # the fake-quantized module the package was converted from
    assert simulated["samples"] == 300 and 98.0 <= simulated["agreement"] < 100.0
    info = coreml_check.inspect_coreml(tmp_path / "run" / "coreml-w8a8" / manifest.file)
    assert info["metadata"]["source_sha256"] == before  # the weights it was quantized from


def test_w8a8_needs_quantized_weights(model, tmp_path):
    """An unquantized model converted as w8a8 is caught by the spec check, not shipped as fp16."""
    package = coreml_export.export_coreml(model, tmp_path / "plain.mlpackage", "w8a8")
    with pytest.raises(VerificationError, match="expected int8 conv/linear weights, found \[.fp16.\]"):
        coreml_check.validate_coreml(package, precision="w8a8", image_input=False, labels=LABELS, input_size=32)


@pytest.mark.parametrize("image_input", [False, True])
def test_runner_reads_a_package_as_core_ml_would_on_macos(model, packages, monkeypatch, image_input):
    """bench's Core ML runtime (macOS only), with Core ML's predict replaced by PyTorch, spec real."""
    from edgeresnet.runner.coreml import CoreMLModel

    path = packages["fp16", image_input]
    with backends.converter_quiet():
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    fake = _TorchBackedMLModel(model, image_input)
    fake.get_spec = lambda: spec
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(ct.models, "MLModel", lambda *args, **kwargs: fake)
    runtime = CoreMLModel(path, labels=list(reversed(LABELS)))  # an order other than the package's
    runtime.image_input = image_input
    pixels = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    with torch.inference_mode():
        logits = model.module.eval()(torch.from_numpy(normalize(pixels, model.preprocess))).numpy()
    if image_input:  # probabilities, in the order of the labels it was given
        np.testing.assert_allclose(runtime(pixels), torch.softmax(torch.from_numpy(logits), 1).numpy()[:, ::-1],
                                   atol=1e-6)
        assert runtime.io_specs()[0]["shape"] == [1, 32, 32, 3]
    else:
        np.testing.assert_allclose(runtime(normalize(pixels, model.preprocess)), logits, atol=1e-6)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    with pytest.raises(EdgeResNetError, match="runs only on macOS"):
        CoreMLModel(path)
