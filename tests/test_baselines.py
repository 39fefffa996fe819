"""The fine-tuned shared baselines reproduce their published top-1 through our zoo, loader and data path."""

from __future__ import annotations

import json

import pytest

import edgeresnet
from edgeresnet.data import open_dataset
from edgeresnet.evaluate import evaluate


@pytest.mark.slow
@pytest.mark.parametrize("file", ["resnet20_cifar10jpeg.pt", "resnet56_cifar10jpeg.pt"])
def test_fine_tuned_baselines_reproduce_their_top1(shared, file):
    expected = json.loads((shared / "models/cifar/baselines.json").read_text())["models"][file]
    model = edgeresnet.load_model(shared / "models/cifar" / file)
    accuracy = evaluate(model.predictor(), open_dataset(shared / "datasets/cifar10-jpeg/test.zip"), model.preprocess,
                        progress=None)
    assert accuracy.n == 10_000
    assert accuracy.top1 == pytest.approx(expected["top1"], abs=0.05)
    assert accuracy.top5 == pytest.approx(expected["top5"], abs=0.05)
