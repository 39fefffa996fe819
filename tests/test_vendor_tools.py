"""Our TFLite and OpenVINO files run in the vendors' own benchmark tools, as users will try them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgeresnet
from edgeresnet.assets import DEMO_DATA, DEMO_MODEL
from edgeresnet.data import open_dataset

BIN = Path(sys.executable).parent
TFLITE, OPENVINO = "tflite-int8,tflite-fp16,tflite-fp32", "openvino-int8,openvino-fp16,openvino-fp32"


def _tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed beside this Python")
    return path


def _export(out: Path, image_input: bool) -> Path:
    data = open_dataset(DEMO_DATA)  # all 300: int8 agreement is checked at 98%, so 40 images would allow no flip
    options = edgeresnet.CompressOptions(export=edgeresnet.ExportConfig(image_input=image_input), latency_runs=2)
    edgeresnet.compress(edgeresnet.load_model(DEMO_MODEL), data,
                        edgeresnet.parse_targets([f"{TFLITE},{OPENVINO}"]), out,
                        options=options)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tensor-input files, and the image-input ones (uint8 pixels in) that apps embed."""
    root = tmp_path_factory.mktemp("vendor")
    return {"tensor": _export(root / "tensor", False), "image": _export(root / "image", True)}


@pytest.mark.parametrize("kind", ["tensor", "image"])
@pytest.mark.parametrize("target", TFLITE.split(","))
def test_litert_benchmark_runs_our_tflite(runs, kind, target, tmp_path):
    tool = _tool("litert-benchmark")
    model = next((runs[kind] / target).glob("*.tflite"))
    result_json = tmp_path / "result.json"
    done = subprocess.run([tool, "--model", model, "--num_runs", "20", "--warmup_runs", "2", "--num_threads", "2",
                           "--result_json", result_json], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    latency = json.loads(result_json.read_text())["latency"]
    assert latency["num_runs"] == 20 and latency["median_ms"] > 0


@pytest.mark.parametrize("kind", ["tensor", "image"])
@pytest.mark.parametrize("target", OPENVINO.split(","))
def test_benchmark_app_runs_our_ir(runs, kind, target, tmp_path):
    tool = _tool("benchmark_app")
    model = next((runs[kind] / target).glob("*.xml"))
    done = subprocess.run([tool, "-m", model, "-d", "CPU", "-niter", "20", "-nthreads", "2", "-nstreams", "1",
                           "-hint", "none", "-api", "sync"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"CI": "true", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"Count:\s+20 iterations", done.stdout)
    assert re.search(r"Median:\s+[0-9.]+ (ms|us)", done.stdout)  # it switches to microseconds below 1 ms
