"""Bad input through the real console script: one clear line on stderr, exit code 2, no traceback.

The catalogue of bad inputs (tests/bad_inputs.py, 30+ cases) runs in-process in
test_bad_inputs.py; these few check the same contract at the process boundary.
"""

from __future__ import annotations

import pickle

import pytest

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
