"""A real Hugging Face folder (written by transformers' save_pretrained) in, labelled app files out."""

from __future__ import annotations

import json

import pytest
import torch

import edgeresnet
from edgeresnet.manifest import read_manifest

from helpers import make_image_folder, run_cli
from tflite_metadata_reader import read_metadata

transformers = pytest.importorskip("transformers")

# id2label in an order that is not alphabetical: the data's folders sort differently.
LABELS = ("zebra", "apple", "mango")


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="bottleneck",
        num_labels=3, id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    model = transformers.ResNetForImageClassification(config).eval()
    with torch.no_grad():  # trained-looking statistics, so that the logits depend on the input
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    folder = root / "resnet-hf"
    model.save_pretrained(folder)
    transformers.ConvNextImageProcessor(size={"shortest_edge": 48}, crop_pct=0.75).save_pretrained(folder)
    return model, folder


def test_logits_equal_transformers_own(hub_folder):
    model, folder = hub_folder
    loaded = edgeresnet.load_model(folder)
    x = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(pixel_values=x).logits, atol=1e-4, rtol=0)
    assert loaded.layout == "huggingface" and loaded.labels == LABELS
    # preprocessor_config.json: shortest edge 48 after resizing to 48 / 0.75 = 64.
    assert (loaded.preprocess.input_size, loaded.preprocess.resize) == (48, 64)
    from_object = edgeresnet.load_model(model)
    assert from_object.labels == LABELS and torch.equal(from_object.module(x), loaded.module(x))


def test_every_artifact_carries_the_hub_labels(hub_folder, tmp_path):
    _, folder = hub_folder
    data = make_image_folder(tmp_path / "images", classes=sorted(LABELS), per_class=6, size=56)
    out = tmp_path / "run"
    targets = "onnx,tflite-int8,openvino-int8,coreml-fp16"
    result = run_cli("export", folder, "--data", data, "--target", targets, "--image-input",
                     "--min-agreement", "0", "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    for target in targets.split(","):
        assert read_manifest(out / target).labels == list(LABELS), target
    tflite = read_manifest(out / "tflite-int8")
    assert read_metadata(out / "tflite-int8" / tflite.file)["labels"] == list(LABELS)
    import openvino as ov

    ir = ov.Core().read_model(str(out / "openvino-int8" / read_manifest(out / "openvino-int8").file))
    assert ir.get_rt_info(["model_info", "labels"]).astype(str).split() == list(LABELS)
    assert read_manifest(out / "coreml-fp16").validation["labels"] == list(LABELS)
    report = json.loads(result.stdout)
    assert {row["target"] for row in report["results"]} >= set(targets.split(","))
