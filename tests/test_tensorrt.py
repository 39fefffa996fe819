"""TensorRT targets: the ONNX files export writes for a Jetson, how hosts without a GPU treat them,
and (where an NVIDIA GPU and TensorRT are present) the engines the runner builds from them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import edgeresnet
from edgeresnet.assets import DEMO_DATA, DEMO_MODEL
from edgeresnet.data import open_dataset
from edgeresnet.manifest import read_manifest
from edgeresnet.runner.bench import BenchConfig, bench
from edgeresnet.runner.tensorrt import engine_path, unavailable_reason

from helpers import run_cli

NO_GPU = unavailable_reason()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tensorrt") / "run"
    report = edgeresnet.compress(edgeresnet.load_model(DEMO_MODEL), open_dataset(DEMO_DATA),
                                 edgeresnet.parse_targets(["tensorrt-fp16,tensorrt-int8,onnx"]), out,
                                 options=edgeresnet.CompressOptions(latency_runs=5))
    return out, {row.target: row for row in report.results}


def test_int8_file_is_symmetric_per_channel_qdq_that_tensorrt_parses(run_dir):
    out, _ = run_dir
    manifest = read_manifest(out / "tensorrt-int8")
    model = onnx.load(str(out / "tensorrt-int8" / manifest.file))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    quantizers = [node for node in model.graph.node if node.op_type == "QuantizeLinear"]
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert quantizers and len(convs) == 19  # the demo ResNet-20: its shortcuts pad, they have no conv
    # TensorRT accepts only zero points of 0 in int8 (symmetric quantization).
    for node in quantizers:
        zero = constants[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), node.name
    # Every conv reads its weight through a Q/DQ pair, one scale per output channel, in [-127, 127].
    producers = {output: node for node in model.graph.node for output in node.output}
    for conv in convs:
        dequantize = producers[conv.input[1]]
        assert dequantize.op_type == "DequantizeLinear"
        weight = constants[producers[dequantize.input[0]].input[0]]
        scale = constants[dequantize.input[1]]
        assert scale.shape == (weight.shape[0],)
        codes = np.round(weight / scale.reshape(-1, 1, 1, 1))
        assert np.abs(codes).max() <= 127
    assert manifest.validation["qdq"]["symmetric_int8"] and manifest.quantization["tool"] == "onnxruntime"
    assert manifest.fidelity.reference == "pytorch-fp32" and manifest.fidelity.agreement >= 95


def test_without_a_gpu_export_reports_the_onnx_accuracy_and_no_latency(run_dir):
    if NO_GPU is None:
        pytest.skip("an NVIDIA GPU with TensorRT is here: the engines are measured instead")
    out, rows = run_dir
    fp16, int8 = rows["tensorrt-fp16"], rows["tensorrt-int8"]
    # The fp16 file is the float graph (the engine's precision is a build flag on the device).
    assert fp16.agreement == 100.0 and fp16.top1 == rows["onnx"].top1
    assert abs(int8.delta_top1) <= 2.0 and int8.agreement >= 95
    for row in (fp16, int8):
        assert row.latency is None and "onnxruntime (CPU)" in row.note and "NVIDIA GPU" in row.note
    assert (out / "tensorrt-fp16" / read_manifest(out / "tensorrt-fp16").file).read_bytes() == \
        (out / "onnx" / read_manifest(out / "onnx").file).read_bytes()


def test_bench_lists_tensorrt_rows_as_skipped_with_the_reason(run_dir):
    if NO_GPU is None:
        pytest.skip("an NVIDIA GPU with TensorRT is here")
    out, _ = run_dir
    result = run_cli("bench", out, "--runs", "5", "--warmup", "1", "--limit", "20", "--json")
    assert result.returncode == 0, result.stderr[-2000:]  # skipped is not failed: the others were measured
    rows = {row["target"]: row for row in json.loads(result.stdout)["results"]}
    assert rows["onnx"]["status"] == "ok"
    for target in ("tensorrt-fp16", "tensorrt-int8"):
        assert rows[target]["status"] == "skipped" and rows[target]["note"] == NO_GPU
    listed = {row["name"]: row for row in json.loads(run_cli("targets", "--json").stdout)}
    assert listed["tensorrt-int8"]["runs_here"] is False and listed["tensorrt-int8"]["why_not"] == NO_GPU
    assert listed["onnx"]["runs_here"] is True


def test_engine_cache_names_what_makes_an_engine_specific(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"graph one")
    first = engine_path(path, "10.3.0", (8, 7))
    assert first.parent == tmp_path / "engines" and first.suffix == ".engine"
    assert engine_path(path, "10.3.0", (8, 7)) == first
    assert engine_path(path, "8.6.2", (8, 7)) != first  # another TensorRT
    assert engine_path(path, "10.3.0", (8, 9)) != first  # another GPU
    path.write_bytes(b"graph two")
    assert engine_path(path, "10.3.0", (8, 7)) != first  # another file


@pytest.mark.skipif(NO_GPU is not None, reason=f"needs an NVIDIA GPU with TensorRT: {NO_GPU}")
def test_engines_are_built_cached_and_agree_with_pytorch(run_dir):
    out, rows = run_dir
    report = bench(out, open_dataset(DEMO_DATA), BenchConfig(runs=20, warmup=5))
    measured = {row.target: row for row in report.results}
    for target in ("tensorrt-fp16", "tensorrt-int8"):
        row = measured[target]
        assert row.status == "ok" and row.latency["p50_ms"] > 0
        assert row.accuracy.agreement >= (99.0 if target.endswith("fp16") else 95.0)
        assert abs(row.accuracy.delta_top1) <= 2.0
        assert list((out / target / "engines").iterdir())  # cached beside the file


def test_labels_txt_lies_beside_every_labelled_artifact(run_dir):
    out, _ = run_dir
    for target in ("onnx", "tensorrt-fp16", "tensorrt-int8"):
        manifest = read_manifest(out / target)
        assert manifest.labels and len(manifest.labels) == 10
        assert (out / target / "labels.txt").read_text().splitlines() == manifest.labels
