"""ResNets written elsewhere (tests/foreign_layouts.py) go through every stage.

Each layout is defined in plain PyTorch as its source writes it, saved as its users save
it, and must load from that file and from the object with the original's logits, be
named right by `inspect`, export to every runtime with its fp32 file agreeing exactly,
prune to 1.5x fewer MACs and export pruned.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgeresnet
from edgeresnet.export import ExportConfig, export, parse_targets
from edgeresnet.inspection import inspect_model
from edgeresnet.loading import read_model

from foreign_layouts import CATALOGUE, by_name, logits_of
from helpers import error_line, run_cli

NAMES = [entry.name for entry in CATALOGUE]


def _example(entry, batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, *entry.input_shape, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every layout built once and saved in its native format: name -> (module, path)."""
    root = tmp_path_factory.mktemp("foreign")
    out = {}
    for entry in CATALOGUE:
        module = entry.build()
        out[entry.name] = (module, entry.save(module, root / entry.name))
    return out


def _model(entry, source):
    """The Model edgeresnet makes of it, at the entry's input size (tiny, for speed)."""
    model = edgeresnet.load_model(source)
    size = entry.input_shape[-1]
    return model.replace(preprocess=model.preprocess.model_copy(update={"input_size": size, "resize": None}))


def test_catalogue_covers_every_layout_named():
    assert len(CATALOGUE) >= 14
    sources = {entry.expect["source"] for entry in CATALOGUE}
    assert sources == {"torchvision", "timm", "pytorch-cifar", "huggingface", "he-cifar"}
    facts = {(e.expect["stem"], e.expect["shortcut"], e.expect["attention"], e.expect["preact"]) for e in CATALOGUE}
    assert {("deep", "avgpool-projection", "se", False), ("3x3", "projection", None, True)} <= facts
    assert {e.expect["attention"] for e in CATALOGUE} == {None, "se", "eca"}
    assert {e.expect["in_chans"] for e in CATALOGUE} == {1, 3}


@pytest.mark.parametrize("name", NAMES)
def test_loads_from_file_and_object_with_the_same_logits(name, saved):
    entry = by_name(name)
    module, path = saved[name]
    x = _example(entry)
    expected = logits_of(module, x)
    for source in (path, module):
        intake = read_model(source)
        with torch.no_grad():
            torch.testing.assert_close(intake.module(x), expected, rtol=1e-4, atol=1e-5)
        assert intake.layout == entry.expect["source"], source
        assert intake.num_classes == entry.num_classes and intake.in_chans == entry.expect["in_chans"]


@pytest.mark.parametrize("name", NAMES)
def test_inspect_names_the_layout(name, saved):
    entry = by_name(name)
    summary = inspect_model(_model(entry, saved[name][1]))
    assert summary["layout"] == entry.expect["source"]
    assert summary["num_classes"] == entry.num_classes and summary["in_chans"] == entry.expect["in_chans"]
    structure = summary["structure"]
    for key in ("stem", "stem_pool", "block", "preact", "shortcut", "attention", "groups", "in_chans"):
        assert structure[key] == entry.expect[key], key


def test_inspect_command_reports_layout_and_takes_input_size(saved):
    path = saved["timm_seresnet18"][1]
    result = run_cli("inspect", path, "--input-size", "96", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["layout"] == "timm" and summary["input_size"] == 96
    assert summary["structure"]["attention"] == "se" and "squeeze-excitation" in summary["description"]


TARGETS = parse_targets(["onnx", "tflite-int8", "openvino-int8", "coreml-fp16"])


@pytest.mark.parametrize("name", NAMES)
def test_exports_to_every_runtime(name, saved, tmp_path):
    entry = by_name(name)
    model = _model(entry, saved[name][0])
    size, rng = entry.input_shape[-1], np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, size, size, 3), dtype=np.uint8)
    # Random weights on noise images: int8 agreement says nothing here (near-ties everywhere), so
    # its bar is off; the fp32 file must agree exactly.
    artifacts = export(model, TARGETS, tmp_path, samples=pixels[:16], calibration=pixels,
                       config=ExportConfig(min_agreement=0))
    by_target = {a.manifest.target: a for a in artifacts}
    assert set(by_target) == {t.name for t in TARGETS}
    assert by_target["onnx"].manifest.fidelity.agreement == 100.0
    for artifact in artifacts:
        assert artifact.path.exists()
        assert artifact.manifest.input.shape[1 if artifact.manifest.input.layout == "NCHW" else 3] == \
            entry.expect["in_chans"]


def test_refusals_name_the_problem(tmp_path):
    vgg = {"features.0.weight": torch.zeros(8, 3, 3, 3), "classifier.0.weight": torch.zeros(10, 8)}
    torch.save(vgg, tmp_path / "vgg.pt")
    line = error_line(run_cli("inspect", tmp_path / "vgg.pt"))
    assert "not a ResNet this tool knows" in line
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10))
    with pytest.raises(edgeresnet.EdgeResNetError, match="not a ResNet: its traced graph has no residual addition"):
        edgeresnet.load_model(plain)
    (tmp_path / "empty").mkdir()
    line = error_line(run_cli("inspect", tmp_path / "empty"))
    assert "looked for config.json" in line and "model.safetensors" in line


@pytest.mark.parametrize("name", NAMES)
def test_prunes_to_fewer_macs_and_exports(name, saved, tmp_path):
    from edgeresnet.models.summary import count_macs

    entry = by_name(name)
    model = _model(entry, saved[name][1])
    size = entry.input_shape[-1]
    # Tiny widths: round to 4 channels, so that 1.5x is reachable on 8-wide layers.
    pruned = edgeresnet.prune(model, edgeresnet.PruneConfig(macs=1.5, importance="l1", round_to=4,
                                                            recalibrate_images=0))
    assert count_macs(model.module, size) / count_macs(pruned.module, size) >= 1.45
    x = _example(entry, 2)
    with torch.no_grad():
        assert pruned.module(x).shape == (2, entry.num_classes)
    pixels = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    (artifact,) = export(pruned, parse_targets(["onnx"]), tmp_path, samples=pixels)
    assert artifact.manifest.fidelity.agreement == 100.0
    # The plan rebuilds the pruned network from its saved weights, whatever the source layout.
    reloaded = edgeresnet.load_model(edgeresnet.save(pruned, tmp_path / "saved"))
    with torch.no_grad():
        torch.testing.assert_close(reloaded.module(x), pruned.module(x))


class _StagesNet(torch.nn.Module):
    """A ResNet no loader knows: timm-ResNetV2-like names (stem / stages.N.blocks.M / head)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.stages = nn.ModuleList()
        for width, stride in ((8, 1), (16, 2)):
            entry = nn.Conv2d(self.stages[-1].out if len(self.stages) else 8, width, 1, stride, bias=False)
            stage = nn.Module()
            stage.proj, stage.out = entry, width
            stage.blocks = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                         nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1, bias=False))
            self.stages.append(stage)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage.proj(x)
            x = torch.relu(x + stage.blocks(x))
        return self.head(x.mean((2, 3)))


def test_a_module_no_layout_describes_goes_through_every_stage(tmp_path):
    from helpers import make_image_folder

    torch.manual_seed(0)
    module = _StagesNet().eval()
    model = edgeresnet.load_model(module)
    assert (model.arch, model.layout, model.num_classes, model.preprocess.input_size) == ("module", "module", 3, 32)
    assert inspect_model(model)["residual_groups"]  # read from its graph, not its names
    data = edgeresnet.open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=8))
    pruned = edgeresnet.prune(model, edgeresnet.PruneConfig(ratio=0.5, importance="l1", round_to=4,
                                                            recalibrate_images=0))
    assert sum(p.numel() for p in pruned.module.parameters()) < sum(p.numel() for p in module.parameters())
    student, history = edgeresnet.distill(pruned, model, edgeresnet.DistillConfig(epochs=1, batch_size=8), data)
    assert len(history) == 1
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    artifacts = export(student, TARGETS, tmp_path / "out", samples=pixels[:8], calibration=pixels,
                       config=ExportConfig(min_agreement=0))
    assert {a.manifest.target for a in artifacts} == {t.name for t in TARGETS}
    assert next(a for a in artifacts if a.manifest.target == "onnx").manifest.fidelity.agreement == 100.0


def test_every_public_function_takes_a_path_a_module_or_a_model(saved, tmp_path):
    from helpers import make_image_folder

    entry = by_name("timm_seresnet18")
    module, path = saved["timm_seresnet18"]
    config = edgeresnet.PruneConfig(ratio=0.25, importance="l1", round_to=4, recalibrate_images=0)
    pruned = [edgeresnet.prune(source, config) for source in (module, path, edgeresnet.load_model(path))]
    assert all(isinstance(p, edgeresnet.Model) for p in pruned)
    x = _example(entry, 2)
    with torch.no_grad():
        torch.testing.assert_close(pruned[0].module(x), pruned[1].module(x))
    assert inspect_model(module)["layout"] == inspect_model(path)["layout"] == "timm"
    data = make_image_folder(tmp_path / "images", classes=tuple(f"c{i}" for i in range(10)), per_class=2, size=64)
    student, _ = edgeresnet.distill(pruned[0], module, edgeresnet.DistillConfig(epochs=1, batch_size=10),
                                    edgeresnet.open_dataset(data))
    assert isinstance(student, edgeresnet.Model)
    report = edgeresnet.compress(module, data, "onnx", tmp_path / "run")
    assert [row.target for row in report.results if row.target == "onnx"] == ["onnx"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Labelled images at each input size the catalogue uses, for the training stages."""
    from helpers import make_image_folder

    root = tmp_path_factory.mktemp("images")
    return lambda size, classes: edgeresnet.open_dataset(make_image_folder(
        root / f"{size}-{classes}", classes=tuple(f"c{i}" for i in range(classes)), per_class=2, size=size))


@pytest.mark.parametrize("name", NAMES)
def test_a_few_tflite_qat_steps_run(name, saved, images):
    entry = by_name(name)
    model = _model(entry, saved[name][0])
    data = images(entry.input_shape[-1], entry.num_classes)
    config = edgeresnet.QatConfig(epochs=1, batch_size=4, limit=4, calibration_images=4)  # one step
    trained, history = edgeresnet.qat(model, config, data, scheme="tflite")
    assert trained.qat is not None and trained.qat.scheme == "tflite" and len(history) == 1
    with torch.no_grad():
        assert trained.module(_example(entry, 2)).shape == (2, entry.num_classes)
