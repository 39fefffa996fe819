"""Extension points: what a new runtime or stage needs to plug in, shown by plugging one in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edgeresnet
from edgeresnet.export import export
from edgeresnet.export.exporter import Check, Checked, Conversion
from edgeresnet.export.registry import EXPORTERS
from edgeresnet.export.targets import Target, parse_targets
from edgeresnet.export.verify import check_fidelity
from edgeresnet.manifest import read_manifest
from edgeresnet.models import create

# A runtime export has never heard of: the float ONNX graph shipped as a ".toy" file and run
# in onnxruntime by the exporter itself (no runner knows the suffix).
TOY = Target("toy-fp32", "toy", "fp32", ".toy", "float32 ONNX under a name of its own")
LABELS = ("a", "b", "c")


class ToyExporter:
    """An Exporter (edgeresnet.export.exporter) written from its protocol alone."""

    tools = ("onnxruntime",)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reads_onnx(self, model, target) -> bool:
        return True

    def simulates(self, reference) -> bool:
        return False

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        self.calls.append("convert")
        assert job.onnx is not None
        for target in targets:
            with job.converting([target]):
                job.paths[target].write_bytes(job.onnx.read_bytes())

    def verify(self, check: Check) -> Checked:
        self.calls.append("verify")
        import onnxruntime

        session = onnxruntime.InferenceSession(str(check.path), providers=["CPUExecutionProvider"])
        given, produced = session.get_inputs()[0], session.get_outputs()[0]
        answers = np.concatenate([session.run(None, {given.name: image[None]})[0] for image in check.tensors])
        fidelity = check_fidelity(check.logits, answers, check.target.precision, name=check.path.name)
        inputs = {"name": given.name, "shape": list(given.shape), "dtype": "float32", "layout": "NCHW"}
        outputs = {"name": produced.name, "shape": list(produced.shape), "dtype": "float32"}
        return Checked(inputs, outputs, fidelity, None, answers)

    def describe(self, target: Target, path: Path, checked: Checked) -> dict:
        self.calls.append("describe")
        return {"verified_in": "onnxruntime, by the toy exporter", "images": len(checked.answers)}


@pytest.fixture
def toy_exporter():
    pytest.importorskip("onnxruntime")
    exporter = ToyExporter()
    EXPORTERS.register("toy", exporter, targets=[TOY])  # the one line a runtime needs besides its own module
    yield exporter
    EXPORTERS.unregister("toy")


def test_toy_exporter(toy_exporter, tmp_path):
    torch.manual_seed(0)
    model = edgeresnet.load_model(create("resnet8", num_classes=3), labels=LABELS)
    size = model.preprocess.input_size
    samples = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)

    [artifact] = export(model, parse_targets(["toy-fp32"]), tmp_path, samples=samples)  # as --target reads it

    assert toy_exporter.calls == ["convert", "verify", "describe"]  # found by its runtime, not by name
    assert artifact.path == tmp_path / "toy-fp32" / "resnet8-toy-fp32.toy"
    assert artifact.path.stat().st_size > 1000
    manifest = read_manifest(artifact.directory)
    assert manifest.target == "toy-fp32" and manifest.runtime == "toy" and manifest.file == artifact.path.name
    assert manifest.fidelity is not None and manifest.fidelity.samples == 8 and manifest.fidelity.agreement == 100
    assert manifest.validation == {"verified_in": "onnxruntime, by the toy exporter", "images": 8}
    assert "onnxruntime" in manifest.tools
    assert manifest.input.shape == [1, 3, size, size] and manifest.output.shape == [1, 3]
    assert (artifact.directory / "labels.txt").read_text() == "a\nb\nc\n"
    with pytest.raises(ValueError, match="registered already"):
        EXPORTERS.register("toy", ToyExporter())  # one name, one exporter
    with pytest.raises(ValueError, match="the name is taken"):
        EXPORTERS.register("toy2", ToyExporter(), targets=[TOY])


def test_an_unregistered_runtime_leaves_no_target_behind(toy_exporter):
    EXPORTERS.unregister("toy")
    with pytest.raises(edgeresnet.EdgeResNetError, match="toy-fp32"):
        parse_targets(["toy-fp32"])
    EXPORTERS.register("toy", toy_exporter, targets=[TOY])  # for the fixture to unregister
