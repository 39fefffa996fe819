"""torchvision-layout ResNets at 224x224 export to every target (random weights, a few images)."""

from __future__ import annotations

import time

import pytest
import torch

import edgeresnet
from edgeresnet.data import open_dataset
from edgeresnet.export.targets import TARGETS
from edgeresnet.manifest import read_manifest

from helpers import make_image_folder


@pytest.mark.slow
# Basic blocks with the preprocessing baked in, bottlenecks without: each path once (a third
# case, resnet18 without it, added a minute to the suite and no path of its own).
@pytest.mark.parametrize(("arch", "image_input"), [("resnet18", True), ("resnet50", False)])
def test_imagenet_resnet_exports_to_every_target(arch, image_input, tmp_path):
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=4, size=256))
    torch.manual_seed(0)  # fixed random weights: int8 near-ties are then the same every run
    model = edgeresnet.load_model(edgeresnet.models.create(arch, num_classes=2))
    start = time.perf_counter()
    report = edgeresnet.compress(model, data, edgeresnet.parse_targets(list(TARGETS)), tmp_path / "run",
                                 options=edgeresnet.CompressOptions(
                                     export=edgeresnet.ExportConfig(image_input=image_input),
                                     latency_runs=5, latency_warmup=1))
    rows = {row.target: row for row in report.results}
    assert set(rows) == {"pytorch-fp32", *TARGETS}
    # fp16 and int8 files passed the export's own agreement check (99.9% and 98%) on these images.
    for target in ("tflite-fp32", "openvino-fp32", "onnx", "tensorrt-fp16"):
        assert rows[target].agreement == 100.0, rows[target]
    if image_input:  # ImageNet preprocessing (unequal std) baked into each file, and still exact in fp32
        assert all(read_manifest(tmp_path / "run" / t).image_input for t, target in TARGETS.items() if target.takes_images)
    print(f"{arch}{' --image-input' if image_input else ''}: every target in {time.perf_counter() - start:.0f} s")
