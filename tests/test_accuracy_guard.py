"""--max-accuracy-drop: a run whose artifact loses more top-1 than allowed fails loudly, and keeps
what it wrote, marked failed, for the user to look at."""

from __future__ import annotations

import json

from edgeresnet.manifest import read_manifest
from edgeresnet.pipeline.plan import failure_reason as _failure

from helpers import run_cli

# Half the channels cut, no recalibration, no fine-tuning: the demo ResNet-20 falls far below
# its 300-image top-1, which the default guard of a recipe (1 point) must catch.
CRIPPLING = """name: cripple
stages:
  - prune: {ratio: 0.5, importance: l1, recalibrate_images: 0}
"""


def test_a_run_that_loses_too_much_accuracy_fails_and_keeps_its_files(tmp_path):
    recipe = tmp_path / "cripple.yaml"
    recipe.write_text(CRIPPLING)
    out = tmp_path / "run"
    done = run_cli("compress", "--recipe", recipe, "--target", "onnx", "--out", out, "--json")
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: onnx lost ") and "more than the 1 --max-accuracy-drop allows" in last, last
    assert f"the run is kept in {out}" in last
    printed = json.loads(done.stdout)  # the results are printed all the same
    report = json.loads((out / "report.json").read_text())
    assert printed["failures"] == report["failures"] == [last.removeprefix("error: ").split("; ")[0]]
    assert report["max_accuracy_drop"] == 1.0
    onnx = next(row for row in report["results"] if row["target"] == "onnx")
    assert onnx["delta_top1"] < -1.0
    assert read_manifest(out / "onnx").failed == report["failures"][0]
    assert (out / "onnx" / "resnet20-onnx.onnx").exists()


def test_the_guard_allows_exactly_the_limit_and_skips_files_not_run():
    assert _failure("tflite-int8", -1.0, 1.0) is None  # a drop of exactly the limit passes
    assert _failure("tflite-int8", -1.01, 1.0).startswith("tflite-int8 lost 1.01 points")
    assert _failure("coreml-fp16", None, 1.0) is None  # not run here: nothing to judge
    assert _failure("onnx", 0.5, 1.0) is None
    assert _failure("tflite-int8", -50.0, None) is None  # no limit, no check
