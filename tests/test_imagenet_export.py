"""torchvision-layout ResNets at 224x224 export to every target (random weights, a few images)."""

from __future__ import annotations

import time

import pytest
import torch

import edgeresnet
from edgeresnet.data import open_dataset
from edgeresnet.export.targets import TARGETS

from helpers import make_image_folder


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_imagenet_resnet_exports_to_every_target(arch, tmp_path):
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=4, size=256))
    torch.manual_seed(0)  # fixed random weights: int8 near-ties are then the same every run
    model = edgeresnet.load_model(edgeresnet.models.create(arch, num_classes=2))
    start = time.perf_counter()
    report = edgeresnet.compress(model, data, edgeresnet.parse_targets(list(TARGETS)), tmp_path / "run",
                                 options=edgeresnet.CompressOptions(latency_runs=5, latency_warmup=1))
    rows = {row.target: row for row in report.results}
    assert set(rows) == {"pytorch-fp32", *TARGETS}
    # fp16 and int8 files passed the export's own agreement check (99.9% and 98%) on these images.
    for target in ("tflite-fp32", "openvino-fp32", "onnx"):
        assert rows[target].agreement == 100.0, rows[target]
    print(f"{arch}: every target in {time.perf_counter() - start:.0f} s")
