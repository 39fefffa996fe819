"""Bad input: one clear line on stderr, exit code 2, no traceback, no run directory."""

from __future__ import annotations

import pickle

import pytest
import torch

from helpers import error_line, make_image_folder, run_cli


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data") / "images", classes=[f"c{i}" for i in range(10)], per_class=1)


@pytest.fixture(scope="module")
def demo_weights(tmp_path_factory):
    from edgeresnet.assets import DEMO_MODEL

    return DEMO_MODEL


def _fails(tmp_path, *args, expect: str):
    out = tmp_path / "run"
    line = error_line(run_cli(*args, "--out", out) if args[0] == "compress" else run_cli(*args))
    assert expect.lower() in line.lower(), line
    assert not out.exists()
    assert not any(p.name.startswith(".run.partial") for p in tmp_path.iterdir())
    return line


def test_missing_model_file(tmp_path, images):
    _fails(tmp_path, "compress", tmp_path / "nope.pt", "--data", images, "--target", "tflite-int8", expect="not found")


def test_file_that_is_not_a_checkpoint(tmp_path, images):
    bogus = tmp_path / "model.pt"
    bogus.write_text("this is not a checkpoint\n")
    _fails(tmp_path, "compress", bogus, "--data", images, "--target", "tflite-int8", expect="model.pt")


def test_state_dict_of_a_network_that_is_not_a_resnet(tmp_path, images):
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    path = tmp_path / "mlp.pt"
    torch.save(mlp.state_dict(), path)
    _fails(tmp_path, "compress", path, "--data", images, "--target", "tflite-int8", expect="not a resnet")


def test_wrong_arch(tmp_path, images, demo_weights):
    line = _fails(tmp_path, "compress", demo_weights, "--arch", "resnet56", "--data", images, "--target", "tflite-int8",
                  expect="resnet56")
    assert "missing" in line or "unexpected" in line


def test_unknown_arch_suggests(tmp_path, demo_weights):
    _fails(tmp_path, "inspect", demo_weights, "--arch", "resnet21", expect="resnet20")


def test_pickle_that_needs_trust(tmp_path, images):
    path = tmp_path / "full.pt"
    from edgeresnet.models import create

    torch.save(create("resnet8"), path)  # a whole pickled module, not a state dict
    _fails(tmp_path, "compress", path, "--data", images, "--target", "tflite-int8", expect="--trust-checkpoint")


def test_empty_data_folder(tmp_path, demo_weights):
    (tmp_path / "empty").mkdir()
    _fails(tmp_path, "compress", demo_weights, "--data", tmp_path / "empty", "--target", "tflite-int8", expect="empty")


def test_unlabelled_data_folder(tmp_path, demo_weights):
    folder = make_image_folder(tmp_path / "flat", classes=["x"], per_class=3)
    for image in (folder / "x").iterdir():
        image.rename(folder / image.name)
    (folder / "x").rmdir()
    _fails(tmp_path, "compress", demo_weights, "--data", folder, "--target", "tflite-int8", expect="no class folders")


def test_unreadable_image(tmp_path, demo_weights):
    folder = make_image_folder(tmp_path / "bad", classes=[f"c{i}" for i in range(10)], per_class=1)
    (folder / "c3" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _fails(tmp_path, "compress", demo_weights, "--data", folder, "--target", "tflite-int8", expect="broken.jpg")


def test_wrong_number_of_classes(tmp_path, demo_weights):
    folder = make_image_folder(tmp_path / "three", classes=["a", "b", "c"], per_class=1)
    _fails(tmp_path, "compress", demo_weights, "--data", folder, "--target", "tflite-int8", expect="10 outputs")


def test_unknown_target(tmp_path, images, demo_weights):
    _fails(tmp_path, "compress", demo_weights, "--data", images, "--target", "tflite-int9", expect="tflite-int8")


def test_unknown_flag_is_one_line(tmp_path):
    _fails(tmp_path, "compress", "--no-such-flag", expect="no such option")


def test_out_dir_that_holds_a_run(tmp_path, images, demo_weights):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")
    line = error_line(run_cli("compress", demo_weights, "--data", images, "--target", "tflite-int8", "--out", out))
    assert "--overwrite" in line
    assert (out / "report.json").read_text() == "{}"


def test_malicious_pickle_never_runs(tmp_path, images):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": Payload()}))
    _fails(tmp_path, "compress", path, "--data", images, "--target", "tflite-int8", expect="--trust-checkpoint")
    assert not marker.exists()
