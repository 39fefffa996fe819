"""Data without labels (issue 23, item 4): a folder, zip or npz of unlabelled images calibrates,
verifies and times the files, accuracy reads "no labels" (null in JSON), and fp32/fp16 targets
need no data at all (the embedded sample images, unlabelled, verify them)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from edgeresnet.cli import main
from edgeresnet.data import batches, open_dataset
from edgeresnet.errors import DataError, EdgeResNetError
from edgeresnet.evaluate import evaluate
from edgeresnet.manifest import read_manifest
from edgeresnet.models import create
from edgeresnet.preprocess import Preprocess
from edgeresnet.loading import fit_labels, load_model

from helpers import make_image_folder


def loose_images(root: Path, n: int = 12, size: int = 32, seed: int = 0) -> Path:
    """``n`` random images at the top of ``root``: no class folders, so no labels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"img{i:03d}.png")
    return root


def cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error(code: int, stdout: str, stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, (code, stderr[-2000:])
    assert stdout == ""
    return errors[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A 3-class ResNet-8 (resnet8.pt) and 12 unlabelled 32x32 images (flat/)."""
    root = tmp_path_factory.mktemp("unlabelled")
    torch.manual_seed(0)
    torch.save(create("resnet8", num_classes=3).eval().state_dict(), root / "resnet8.pt")
    loose_images(root / "flat")
    return root


# --------------------------------------------------------------------------- opening


def test_loose_images_in_a_folder_a_zip_and_an_npz_are_unlabelled(tmp_path):
    folder = loose_images(tmp_path / "flat", n=5)
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, file.name)
        archive.writestr("readme.txt", "not an image")
    pixels = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "images.npz", images=pixels)
    for path, n in ((folder, 5), (tmp_path / "flat.zip", 5), (tmp_path / "images.npz", 4)):
        data = open_dataset(path)
        assert not data.labelled and data.classes == () and len(data) == n, path
        assert "no labels" in repr(data)
        assert data.subset(2).labelled is False and len(data.subset(2)) == 2
        inputs, labels = next(batches(data, Preprocess.cifar(), 3))  # loaders still yield images
        assert inputs.shape == (3, 3, 32, 32) and labels.tolist() == [-1, -1, -1]
    assert open_dataset(folder).fingerprint() == open_dataset(tmp_path / "flat.zip").fingerprint()
    assert open_dataset(folder).name(0) == "img000.png"


def test_a_labelled_set_without_its_labels_is_another_data_set(tmp_path):
    labelled = open_dataset(make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=2))
    bare = labelled.unlabelled()
    assert labelled.labelled and not bare.labelled and bare.classes == () and len(bare) == 4
    assert bare.fingerprint() != labelled.fingerprint()  # a run on one is not a run on the other
    assert bare.in_class_order(("b", "a")) is bare


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    root = make_image_folder(tmp_path / "mixed", classes=("cat", "dog"), per_class=1)
    loose_images(root, n=2)
    with pytest.raises(DataError, match=r"mixes 2 loose images \(img000\.png, \.\.\.\) with images in 2 folders "
                                        r"\(cat/, \.\.\.\).*root/<class>/<image>.*root/<image>") as error:
        open_dataset(root)
    assert "\n" not in str(error.value)


def test_npz_errors_stay_one_line(tmp_path):
    np.savez(tmp_path / "classes.npz", images=np.zeros((2, 8, 8, 3), np.uint8), classes=np.array(["a"]))
    with pytest.raises(DataError, match="has 'classes' but no 'labels'"):
        open_dataset(tmp_path / "classes.npz")
    np.savez(tmp_path / "nothing.npz", labels=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="has no 'images' array"):
        open_dataset(tmp_path / "nothing.npz")
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="holds no images"):
        open_dataset(tmp_path / "empty.npz")


def test_one_folder_of_images_is_unlabelled_for_a_model_of_several_classes(tmp_path):
    loose_images(tmp_path / "wrapped" / "calib", n=3)  # what `zip -r calib.zip calib` holds
    data = open_dataset(tmp_path / "wrapped")
    assert data.classes == ("calib",)  # to torchvision, one class
    said = []
    assert not fit_labels(10, data, said.append).labelled
    assert "calib/" in said[0] and "unlabelled" in said[0]
    assert fit_labels(1, data).labelled  # a one-output model: one class it is
    with pytest.raises(DataError, match="3 outputs but the data has 2 classes"):
        fit_labels(3, open_dataset(make_image_folder(tmp_path / "two", classes=("a", "b"), per_class=1)))


def test_evaluate_on_unlabelled_images_gives_predictions_and_no_accuracy(tmp_path):
    labelled = open_dataset(make_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=3))
    model = load_model(create("resnet8", num_classes=3).eval())
    with_labels = evaluate(model.predictor(), labelled, model.preprocess, progress=None)
    without = evaluate(model.predictor(), labelled.unlabelled(), model.preprocess, progress=None)
    assert without.top1 is None and without.top5 is None and not without.labelled and without.n == 9
    np.testing.assert_array_equal(without.predictions, with_labels.predictions)
    assert str(without) == "no labels (9 images)"


# --------------------------------------------------------------------------- export, compress, bench


def test_export_int8_on_unlabelled_images_calibrates_verifies_and_times(tiny, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = cli("export", tiny / "resnet8.pt", "--data", tiny / "flat", "--target", "onnx,tflite-int8",
                               "--calibration-size", "8", "--min-agreement", "50", "--out", out)
    assert code == 0, stderr[-3000:]
    assert "on 12 unlabelled images of flat" in stdout
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if line.count("│") > 3}
    assert rows["tflite-int8"].count("no labels") == 2 and rows["pytorch-fp32"].count("no labels") == 1
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["labelled"] is False and report["data"]["classes"] == []
    assert report["calibration"]["images"] == 8 and report["max_accuracy_drop"] is None
    assert report["stages"][0]["top1"] is None
    for row in report["results"]:
        assert row["top1"] is None and row["top5"] is None and row["delta_top1"] is None, row
        assert row["agreement"] is not None and row["latency"]["p50_ms"] > 0
    manifest = read_manifest(out / "tflite-int8")
    assert manifest.accuracy.top1 is None and manifest.baseline.top1 is None and manifest.accuracy.samples == 12
    assert manifest.data["labelled"] is False and manifest.data["name"] == "flat"
    assert manifest.fidelity.samples == 12

    # bench takes the run's images, unlabelled as the run read them: agreement, no accuracy.
    code, stdout, stderr = cli("bench", out / "onnx", "--runs", "3", "--warmup", "1", "--threads", "1", "--json")
    assert code == 0, stderr[-3000:]
    bench = json.loads(stdout)
    assert bench["data"]["labelled"] is False
    accuracy = bench["results"][0]["accuracy"]
    assert accuracy["top1"] is None and accuracy["delta_top1"] is None and accuracy["agreement"] == 100.0


def test_bench_with_unlabelled_data_says_no_labels(tiny, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = cli("export", tiny / "resnet8.pt", "--data", tiny / "flat", "--target", "onnx", "--out", out)
    assert code == 0, stderr[-3000:]
    code, stdout, stderr = cli("bench", out, "--data", tiny / "flat", "--runs", "3", "--warmup", "1",
                               "--threads", "1")
    assert code == 0, stderr[-3000:]
    row = next(line for line in stdout.splitlines() if line.startswith("│ onnx"))
    assert row.count("no labels") == 2 and "100.00%" in row
    code, stdout, stderr = cli("report", out, "--out", tmp_path / "comparison")  # plots without accuracy too
    assert code == 0, stderr[-3000:]
    onnx = next(line for line in stdout.splitlines() if "| onnx |" in line)
    assert "| no labels | no labels | 100.00% |" in onnx, stdout
    # --no-labels reads labelled data the same way
    labelled = make_image_folder(tmp_path / "labelled", classes=("a", "b", "c"), per_class=2)
    code, stdout, stderr = cli("bench", out, "--data", labelled, "--no-labels", "--runs", "2", "--warmup", "0",
                               "--json")
    assert code == 0, stderr[-3000:]
    result = json.loads(stdout)
    assert result["config"]["labels"] is False and result["results"][0]["accuracy"]["top1"] is None


def test_fp32_and_fp16_targets_need_no_data(tiny, tmp_path):
    out = tmp_path / "run"
    # --input-size 48: the embedded 32x32 samples are resized by the model's own preprocessing
    code, stdout, stderr = cli("export", tiny / "resnet8.pt", "--target", "onnx,tflite-fp32,openvino-fp16",
                               "--input-size", "48", "--limit", "20", "--out", out)
    assert code == 0, stderr[-3000:]
    assert "no --data given: verifying and timing on the 300 embedded sample images" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["embedded"] is True and report["data"]["name"] == "cifar10-samples.zip"
    assert [row["target"] for row in report["results"]] == ["pytorch-fp32", "onnx", "tflite-fp32", "openvino-fp16"]
    for target in ("onnx", "tflite-fp32", "openvino-fp16"):
        manifest = read_manifest(out / target)
        assert manifest.input.shape[-1] == 48 or manifest.input.shape[-2] == 48
        assert manifest.fidelity.samples == 20 and manifest.fidelity.agreement >= 99.9
        assert manifest.data["embedded"] is True and manifest.data["labelled"] is False
        assert manifest.accuracy.top1 is None


def test_int8_without_data_needs_calibration_images(tiny, tmp_path):
    line = one_error(*cli("export", tiny / "resnet8.pt", "--target", "onnx,tflite-int8", "--out", tmp_path / "run"))
    assert line == ("error: tflite-int8 needs calibration images, and no --data is given; pass --data (or "
                    "--train-data) with a folder, .zip or .npz of images, labelled or not.")
    assert not (tmp_path / "run").exists()


def test_the_accuracy_guard_cannot_judge_without_labels(tiny, tmp_path):
    line = one_error(*cli("compress", tiny / "resnet8.pt", "--data", tiny / "flat", "--target", "onnx",
                          "--max-accuracy-drop", "1", "--out", tmp_path / "run"))
    assert "--max-accuracy-drop compares top-1" in line and "has no labels" in line
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".*"))
    # From a recipe's default, the guard is skipped, and the run says so.
    code, _, stderr = cli("compress", tiny / "resnet8.pt", "--data", tiny / "flat", "--recipe", "ptq-int8",
                          "--target", "onnx", "--out", tmp_path / "run")
    assert code == 0, stderr[-3000:]
    assert "recipe ptq-int8's max_accuracy_drop (1 points) is not checked: flat has no labels" in stderr
    assert json.loads((tmp_path / "run" / "report.json").read_text())["max_accuracy_drop"] is None


def test_distill_learns_from_the_teacher_alone_on_unlabelled_images(tiny, tmp_path):
    recipe = tmp_path / "distill.yaml"
    recipe.write_text("name: teacher-only\nstages:\n  - distill: {epochs: 1, batch_size: 4, alpha: 1.0}\n")
    out = tmp_path / "run"
    code, stdout, stderr = cli("compress", tiny / "resnet8.pt", "--data", tiny / "flat", "--train-data",
                               tiny / "flat", "--recipe", recipe, "--target", "onnx", "--out", out)
    assert code == 0, stderr[-3000:]
    assert "epoch 1/1: loss" in stderr and "no labels" in stderr
    report = json.loads((out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["input", "distill"]
    assert all(s["top1"] is None for s in report["stages"])
    assert report["stages"][1]["epochs"][0]["train_top1"] is None
    # A loss that weighs labels cannot be computed without them.
    recipe.write_text("name: mixed\nstages:\n  - distill: {epochs: 1, batch_size: 4, alpha: 0.5}\n")
    line = one_error(*cli("compress", tiny / "resnet8.pt", "--data", tiny / "flat", "--train-data", tiny / "flat",
                          "--recipe", recipe, "--target", "onnx", "--out", tmp_path / "run2"))
    assert "alpha 0.5" in line and "-o distill.alpha=1" in line


@pytest.mark.parametrize("stage, fix", [("qat", "-o qat.alpha=1"), ("prune: {ratio: 0.25}", "prune.importance=l1")])
def test_stages_that_need_labels_say_so(tiny, tmp_path, stage, fix):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nstages:\n  - {stage}\n")
    target = "tflite-int8" if stage == "qat" else "onnx"
    line = one_error(*cli("compress", tiny / "resnet8.pt", "--data", tiny / "flat", "--train-data", tiny / "flat",
                          "--recipe", recipe, "--target", target, "--out", tmp_path / "run"))
    assert "has no labels" in line or "has none" in line
    assert fix in line


def test_commands_that_measure_accuracy_only_need_labels(tiny):
    line = one_error(*cli("evaluate", tiny / "resnet8.pt", "--data", tiny / "flat"))
    assert "evaluate measures top-1 on --data, which needs labels" in line and "root/<class>/<image>" in line


def test_the_pipeline_api_takes_no_data(tiny, tmp_path):
    from edgeresnet.pipeline.api import compress

    with pytest.raises(EdgeResNetError, match="tflite-int8 needs calibration images"):
        compress(tiny / "resnet8.pt", None, "tflite-int8", tmp_path / "run")
