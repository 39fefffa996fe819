"""compress with a recipe: stages in order, a run directory that records them, --resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

import edgeresnet
from edgeresnet.data import open_dataset
from edgeresnet.export import parse_targets
from edgeresnet.manifest import read_manifest
from edgeresnet.recipes import load_recipe

from helpers import REPO, error_line, make_tiny_compress_inputs, run_cli


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A ResNet-8 checkpoint with two classes, and train and test folders of 32x32 images."""
    return make_tiny_compress_inputs(tmp_path_factory.mktemp("tiny"))


def test_qat_recipe_trains_one_model_per_int8_runtime(tiny, tmp_path):
    model = edgeresnet.load_model(tiny / "resnet8.pt")
    recipe = load_recipe("qat-int8", ["qat.epochs=1", "qat.batch_size=16", "qat.calibration_images=16"])
    data, train = open_dataset(tiny / "test"), open_dataset(tiny / "train")
    report = edgeresnet.compress(model, data, parse_targets(["tflite-int8,openvino-int8,onnx"]), tmp_path / "run",
                                 recipe=recipe, train_data=train)
    assert [record.stage for record in report.stages] == ["input", "qat-tflite", "qat-openvino"]
    rows = {row.target: row for row in report.results}
    assert rows["tflite-int8"].source == "qat-tflite" and rows["openvino-int8"].source == "qat-openvino"
    assert rows["onnx"].source == "input" and rows["onnx"].source_agreement == 100.0
    assert rows["tflite-int8"].source_agreement >= 90  # 32 images of noise: small margins
    run = tmp_path / "run"
    for name in ("recipe.yaml", "run.json", "log.txt", "stages.json", "stages.png", "report.json"):
        assert (run / name).exists(), name
    assert load_recipe(str(run / "recipe.yaml")) == recipe  # the resolved recipe loads back as it ran
    assert (run / "stages" / "01-qat-tflite" / "checkpoints" / "epoch-001.pt").exists()
    assert json.loads((run / "stages.json").read_text())[1]["stage"] == "qat-tflite"
    assert read_manifest(run / "tflite-int8").source_model["qat"] == "tflite"


def test_killed_run_resumes_to_the_same_result(tiny, tmp_path):
    """SIGKILL in the middle of distillation, then --resume: the same weights and files as a run
    that was never interrupted."""
    recipe = tmp_path / "distill.yaml"
    recipe.write_text("name: distill-only\nstages:\n  - distill: {epochs: 4, batch_size: 8, lr: 0.01}\n")
    args = ["compress", tiny / "resnet8.pt", "--data", tiny / "test", "--train-data", tiny / "train",
            "--recipe", recipe, "--target", "onnx"]
    whole = run_cli(*args, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]

    out = tmp_path / "killed"
    partial = tmp_path / ".killed.partial"
    process = subprocess.Popen([sys.executable, "-m", "edgeresnet", *map(str, args), "--out", str(out)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = partial / "stages" / "01-distill" / "checkpoints" / "epoch-002.pt"
    deadline = time.monotonic() + 300
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.exists() and not out.exists(), "the run ended before it could be killed mid-training"

    resumed = run_cli(*args, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch" in resumed.stderr
    for name in ("stages/01-distill/model.safetensors", "onnx/resnet8-onnx.onnx"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert not partial.exists()


def test_recipe_problems_fail_before_any_work(tiny, tmp_path):
    common = ["compress", tiny / "resnet8.pt", "--data", tiny / "test", "--out", tmp_path / "run"]
    needs_training = error_line(run_cli(*common, "--recipe", "qat-int8"))
    assert "needs training images" in needs_training and "--train-data" in needs_training
    mismatch = error_line(run_cli(*common, "--train-data", tiny / "train", "--recipe", "qat-int8-openvino",
                                  "--target", "tflite-int8"))
    assert "qat.scheme" in mismatch
    unknown = error_line(run_cli(*common, "--recipe", "qat-int8", "-o", "qat.epoch=2"))
    assert "did you mean 'epochs'" in unknown
    assert "no --recipe" in error_line(run_cli(*common, "-o", "qat.epochs=2", "--target", "onnx"))
    assert "--out" in error_line(run_cli("compress", "--resume", "--target", "onnx"))
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()
