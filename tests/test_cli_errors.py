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


# Mistakes a new user made (issue 25), each answered with the real problem, not a later symptom.
@pytest.mark.parametrize(("args", "expect"), [
    (("prune", "{tmp}/nope.pt", "--ratio", "0.5"), "model file not found"),  # not "no evaluation data given"
    (("export", "{tmp}/nope.pt", "--target", "onnx"), "model file not found"),
    (("inspect", "{tmp}/model.tflite"), "is an exported tflite file, not a pytorch checkpoint"),
    (("compress", "{tmp}/model.onnx", "--target", "onnx"), "is an exported onnx file"),
    (("export", "--format", "tflite"), "--target tflite-int8"),  # not click's nearest spelling, --out
    (("compress", "--target", "tflite-int9"), "did you mean 'tflite-int8'"),
    (("bench", "{tmp}/missing-run"), "missing-run does not exist"),
])
def test_each_mistake_names_the_real_problem(tmp_path, args, expect):
    (tmp_path / "model.tflite").write_text("not a checkpoint")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    result = run_cli(*(arg.format(tmp=tmp_path) for arg in args))
    line = error_line(result)
    assert expect.lower() in line.lower(), line
    # The error is all there is: no note about data or loading printed before it.
    assert [l for l in result.stderr.splitlines() if l.strip()] == [line], result.stderr


def test_occupied_out_is_refused_before_the_model_loads(tmp_path, images):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("compress", tmp_path / "nope-either.pt", "--data", images, "--target", "onnx", "--out", out)
    # The missing model is said first: it is the first argument a user would fix.
    assert "model file not found" in error_line(result)
    result = run_cli("compress", "--target", "onnx", "--out", out)
    assert "already holds files" in error_line(result) and (out / "keep.txt").read_text() == "mine"
