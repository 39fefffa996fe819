"""A stage edgeresnet has never heard of, plugged in with its own code and one registry line: a
recipe names it, compress runs it in order, saves its model and exports what it produced."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

import edgeresnet
from edgeresnet.stages.registry import STAGES, StageSpec, register


class ScaleBiasConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    scale: float = 1.0


def scale_classifier_bias(model, config: ScaleBiasConfig, data=None):
    """The toy stage: a copy of ``model`` whose classifier bias is multiplied by ``config.scale``."""
    import copy

    import torch

    module = copy.deepcopy(model.module)  # a stage never changes its input
    with torch.no_grad():
        module.linear.bias.mul_(config.scale)  # the demo, a He et al. CIFAR ResNet
    return model.replace(module=module)


@pytest.fixture
def toy_stage():
    register(  # the one line a stage needs besides its own module
        StageSpec(name="scale-bias", config_path=f"{__name__}:ScaleBiasConfig",
                  function_path=f"{__name__}:scale_classifier_bias", trains=False, rank=-1,
                  doing="scaling the classifier bias")
    )
    yield
    del STAGES["scale-bias"]


def test_a_registered_stage_runs_from_a_recipe(toy_stage, tmp_path):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text("name: toy\ndescription: a stage from a test\ntargets: [onnx]\nmax_accuracy_drop: 100\n"
                      "stages:\n  - scale-bias:\n      scale: 0.0\n  - prune:\n      ratio: 0.25\n      importance: l1\n")
    with pytest.raises(edgeresnet.EdgeResNetError, match="scale"):  # its settings are checked like any stage's
        edgeresnet.compress(recipe=recipe, overrides=["scale-bias.scale=high"], limit=20, out=tmp_path / "bad")
    report = edgeresnet.compress(recipe=recipe, limit=20, out=tmp_path / "run", options={"threads": 2})
    assert [record.stage for record in report.stages] == ["input", "scale-bias", "prune"]
    assert (tmp_path / "run" / "stages" / "01-scale-bias" / "model.safetensors").is_file()
    saved = edgeresnet.load(tmp_path / "run" / "stages" / "01-scale-bias" / "model.safetensors")
    assert float(saved.linear.bias.abs().sum()) == 0.0  # what the stage produced is what the next stage took
    assert "scale: 0.0" in (tmp_path / "run" / "recipe.yaml").read_text()
    [onnx] = [row for row in report.results if row.target == "onnx"]
    assert onnx.source == "prune" and onnx.source_agreement == 100.0  # the file is the last stage's model
