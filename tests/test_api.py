"""The Python API does what the commands do: `edgeresnet.compress`, `edgeresnet.bench` and
`edgeresnet.report` against `edgeresnet compress`, `bench` and `report` on the same inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import edgeresnet
from edgeresnet.runner.bench import BenchConfig

from helpers import run_cli

# The embedded demo ResNet-20 on 60 of its images, to ONNX (no calibration): seconds.
ARGS = {"targets": "onnx", "limit": 60, "seed": 0}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    command = run_cli("compress", "--target", ARGS["targets"], "--limit", ARGS["limit"], "--threads", 2,
                      "--out", root / "cli", "--json")
    assert command.returncode == 0, command.stderr[-2000:]
    report = edgeresnet.compress(targets=ARGS["targets"], limit=ARGS["limit"], seed=ARGS["seed"],
                                 out=root / "api", options={"threads": 2})
    return root, json.loads(command.stdout), report


def test_compress_writes_what_the_command_writes(runs):
    root, command, report = runs
    assert report.directory == root / "api"
    assert command["run"] == str(root / "cli")
    measured = ("target", "file", "size_bytes", "top1", "top5", "delta_top1", "agreement", "source")
    assert [{k: row[k] for k in measured} for row in command["results"]] == [
        {k: getattr(row, k) for k in measured} for row in report.results
    ]
    assert command["data"] == report.data and command["model"] == report.model
    for row in report.results:
        if row.file:  # the same bytes, whichever way the run was started
            assert _sha256(root / "api" / row.file) == _sha256(root / "cli" / row.file)


def test_bench_measures_what_the_command_measures(runs):
    root, _, _ = runs
    command = run_cli("bench", root / "cli", "--runs", 3, "--warmup", 0, "--threads", 1, "--json")
    assert command.returncode == 0, command.stderr[-2000:]
    result = edgeresnet.bench(root / "api", config=BenchConfig(runs=3, warmup=0, threads=1))
    accuracy = [(row["target"], row["status"], row["accuracy"]) for row in json.loads(command.stdout)["results"]]
    assert accuracy == [(row.target, row.status, row.accuracy.model_dump() if row.accuracy else None)
                        for row in result.results]
    assert (root / "api" / "bench-local.json").is_file()  # beside the run, for report


def test_report_writes_what_the_command_writes(runs, tmp_path):
    root, _, _ = runs
    run_dir = root / "cli"  # benchmarked by the test above, or compress's own measurement
    command = run_cli("report", run_dir, "--out", tmp_path / "cli", "--json")
    assert command.returncode == 0, command.stderr[-2000:]
    comparison = edgeresnet.report([run_dir], tmp_path / "api")
    assert (tmp_path / "api" / "comparison.md").read_text() == (tmp_path / "cli" / "comparison.md").read_text()
    assert json.loads(command.stdout)["per_device"] == comparison.per_device
    assert sorted(p.name for p in comparison.files) == sorted(Path(p).name for p in json.loads(command.stdout)["files"])


def test_public_functions_win_over_submodules_of_the_same_name():
    """Importing edgeresnet.evaluate or edgeresnet.export.targets (modules) leaves
    edgeresnet.evaluate and edgeresnet.export the functions the API documents."""
    import subprocess
    import sys

    code = (
        "import edgeresnet, edgeresnet.export.targets, edgeresnet.evaluate\n"
        "edgeresnet.load_recipe('ptq-int8')\n"
        "assert callable(edgeresnet.evaluate) and edgeresnet.evaluate.__name__ == 'evaluate'\n"
        "assert callable(edgeresnet.export) and edgeresnet.export.__name__ == 'export'\n"
        "assert type(edgeresnet.models).__name__ == 'module'\n"
        "from edgeresnet import export\n"
        "assert callable(export)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_export_to_a_relative_directory(tmp_path):
    """The TFLite converter's child process runs in its own work directory: a relative out_dir
    given to edgeresnet.export must still reach it."""
    import subprocess
    import sys

    code = (
        "from pathlib import Path\n"
        "import edgeresnet\n"
        "from edgeresnet.data import open_dataset, sample_pixels\n"
        "from edgeresnet.assets import DEMO_DATA\n"
        "model = edgeresnet.load_model(edgeresnet.models.create('resnet8', num_classes=10))\n"
        "pixels = sample_pixels(open_dataset(DEMO_DATA), model.preprocess, 8)\n"
        "[artifact] = edgeresnet.export(model, edgeresnet.parse_targets(['tflite-fp32']), Path('out'), samples=pixels)\n"
        "assert artifact.path.is_file(), artifact.path\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "tflite-fp32").is_dir()
