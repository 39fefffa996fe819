"""edgeresnet bench on this machine: what it measures, and how it refuses bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgeresnet
from edgeresnet.assets import DEMO_DATA, DEMO_MODEL
from edgeresnet.data import open_dataset
from edgeresnet.manifest import read_manifest
from edgeresnet.runner.bench import BenchConfig, BenchReport, bench

from helpers import error_line, run_cli

TARGETS = "tflite-int8,openvino-int8,onnx,coreml-fp16"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    report = edgeresnet.compress(edgeresnet.load_model(DEMO_MODEL), open_dataset(DEMO_DATA),
                                 edgeresnet.parse_targets([TARGETS]), out,
                                 options=edgeresnet.CompressOptions(latency_runs=5))
    return out, {row.target: row for row in report.results}


def test_bench_reports_latency_memory_and_the_accuracy_export_measured(run_dir, tmp_path):
    out, exported = run_dir
    result = run_cli("bench", out, "--runs", "30", "--warmup", "3", "--threads", "2", "--json",
                     "--json-out", tmp_path / "bench.json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = BenchReport.model_validate_json(result.stdout)
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(result.stdout)
    assert report.schema_version == 2 and report.device == "local" and report.config.threads == 2
    assert report.data["samples"] == 300  # the run's own data, found through its report.json
    rows = {row.target: row for row in report.results}
    assert rows["coreml-fp16"].status == "skipped" and "macOS" in rows["coreml-fp16"].note
    for target in ("tflite-int8", "openvino-int8", "onnx"):
        row = rows[target]
        assert row.status == "ok" and row.runtime_version
        assert row.latency["runs"] == 30 and 0 < row.latency["min_ms"] <= row.latency["p50_ms"] <= row.latency["p99_ms"]
        assert row.throughput_ips == pytest.approx(1e3 / row.latency["mean_ms"])
        assert row.load_ms > 0 and row.first_inference_ms > 0
        assert row.memory.peak_rss_mb >= row.memory.after_run_mb > 0 and row.memory.added_by_load_mb > 0
        # The same file on the same images: exactly what export measured.
        assert row.accuracy.top1 == pytest.approx(exported[target].top1)
        assert row.accuracy.delta_top1 == pytest.approx(exported[target].delta_top1, abs=1e-3)
        assert row.accuracy.agreement == pytest.approx(exported[target].agreement)
        assert row.accuracy.baseline_top1 == pytest.approx(exported["pytorch-fp32"].top1)
    table = run_cli("bench", out, "--runs", "5", "--limit", "20").stdout
    assert "tflite-int8" in table and "CPU features for int8: " in table  # the table, and the host's ISA below it


def test_bench_one_artifact_with_batch_and_without_data(run_dir, tmp_path):
    out, _ = run_dir
    report = bench(out / "tflite-int8", None, BenchConfig(runs=5, warmup=1, batch=4, threads=1))
    (row,) = report.results
    assert row.accuracy is None and report.data is None  # no data: latency and memory only
    assert row.throughput_ips == pytest.approx(4e3 / row.latency["mean_ms"])  # four images per inference
    with_data = bench(out / "tflite-int8", open_dataset(DEMO_DATA), BenchConfig(runs=5, batch=7, limit=50))
    assert with_data.results[0].accuracy.samples == 50  # the last batch of 50 padded, not dropped or miscounted


def test_artifact_changed_after_export_is_refused(run_dir, tmp_path):
    import shutil

    out, _ = run_dir
    copy = tmp_path / "tflite-int8"
    shutil.copytree(out / "tflite-int8", copy)
    model = copy / read_manifest(copy).file
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one weight byte flipped
    model.write_bytes(bytes(data))
    assert "does not match the sha256 in its manifest" in error_line(run_cli("bench", copy, "--runs", "2"))
    assert "does not exist" in error_line(run_cli("bench", tmp_path / "missing", "--runs", "2"))
    (tmp_path / "empty").mkdir()
    assert "no artifact in" in error_line(run_cli("bench", tmp_path / "empty", "--runs", "2"))


def test_missing_runtime_names_the_extra(run_dir, tmp_path):
    """A device without OpenVINO: one line that says what to install, from the measuring process."""
    out, _ = run_dir
    hidden = tmp_path / "no-openvino"
    (hidden / "openvino").mkdir(parents=True)
    (hidden / "openvino" / "__init__.py").write_text("raise ImportError('openvino is not installed')\n")
    done = subprocess.run([sys.executable, "-m", "edgeresnet", "bench", str(out / "openvino-int8"), "--runs", "2"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(hidden), "PATH": "/usr/bin:/bin"})
    line = error_line(done)
    assert "OpenVINO is not installed" in line and 'edgeresnet[runner]' in line


def test_runner_imports_neither_torch_nor_tensorflow():
    code = ("import sys, edgeresnet.cli, edgeresnet.runner.bench, edgeresnet.runner.measure, edgeresnet.runner.remote;"
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_report_compares_two_benchmarked_runs(run_dir, tmp_path):
    import shutil

    from PIL import Image

    out, _ = run_dir
    first, second = tmp_path / "first", tmp_path / "second"
    for copy in (first, second):
        shutil.copytree(out, copy)
        assert run_cli("bench", copy, "--runs", "20").returncode == 0  # the run's own images: deltas measured
        assert (copy / "bench-local.json").is_file()  # written beside the run, for report
    result = run_cli("report", first, second, "--out", tmp_path / "comparison")
    assert result.returncode == 0, result.stderr[-2000:]
    table = (tmp_path / "comparison" / "comparison.md").read_text()
    for run in ("first", "second"):
        for target in ("tflite-int8", "openvino-int8", "onnx"):
            assert f"| {run} | local | {target} |" in table
    assert result.stdout.count("| local |") == 6  # the same table on stdout
    # Per device, the fastest file within the accuracy budget (1 point by default), also in the files.
    assert "local: fastest within 1 point(s) of FP32: " in result.stdout
    assert "local: fastest within" in table and "local: fastest within" in (tmp_path / "comparison" / "comparison.html").read_text()
    assert "<table>" in (tmp_path / "comparison" / "comparison.html").read_text()
    for plot in ("latency_vs_accuracy.png", "size_per_target.png", "latency_distribution.png"):
        with Image.open(tmp_path / "comparison" / plot) as image:
            assert image.format == "PNG" and image.size[0] > 400
    assert "holds neither" in error_line(run_cli("report", tmp_path / "comparison", "--out", tmp_path / "x"))


def test_a_run_on_a_subset_is_benchmarked_on_the_same_subset(tmp_path):
    """compress --limit 60: bench, given no --data, evaluates those 60 images, so the baseline applies."""
    data = open_dataset(DEMO_DATA).subset(60, seed=0)  # what `compress --limit 60` evaluates on
    report = edgeresnet.compress(edgeresnet.load_model(DEMO_MODEL), data, edgeresnet.parse_targets(["onnx"]),
                                 tmp_path / "run", options=edgeresnet.CompressOptions(latency_runs=2))
    result = run_cli("bench", tmp_path / "run", "--runs", "5", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = BenchReport.model_validate_json(result.stdout).results
    assert row.accuracy.samples == 60
    assert row.accuracy.top1 == pytest.approx(report.results[1].top1) and row.accuracy.delta_top1 is not None


def test_a_runtime_that_fails_fails_its_row_and_the_others_are_measured(run_dir, tmp_path):
    """A device without OpenVINO, benchmarking the whole run: the OpenVINO row says why, exit code 3."""
    out, _ = run_dir
    hidden = tmp_path / "no-openvino"
    (hidden / "openvino").mkdir(parents=True)
    (hidden / "openvino" / "__init__.py").write_text("raise ImportError('openvino is not installed')\n")
    done = subprocess.run([sys.executable, "-m", "edgeresnet", "bench", str(out), "--runs", "2", "--limit", "20",
                           "--json", "--json-out", str(tmp_path / "bench.json")],
                          capture_output=True, text=True, env={"PYTHONPATH": str(hidden), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 3, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: 1 of 4 files could not be measured (openvino-int8)")
    report = BenchReport.model_validate_json(done.stdout)
    assert report.schema_version == 2
    rows = {row.target: row for row in report.results}
    assert rows["openvino-int8"].status == "failed" and "OpenVINO is not installed" in rows["openvino-int8"].note
    assert rows["tflite-int8"].status == "ok" and rows["onnx"].status == "ok" and rows["tflite-int8"].latency
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(done.stdout)


def test_report_says_per_device_which_file_is_fastest_and_why_int8_is_slower():
    from edgeresnet.reporting.sources import Row, verdicts

    def row(run, device, target, p50, delta):
        return Row(run, device, target, 1000, 80.0 + delta, delta, 99.0, p50, p50 * 1.2, 1e3 / p50, 50.0)

    rows = [row("r20", "pi", "tflite-fp32", 9.0, 0.0), row("r20", "pi", "tflite-int8", 3.0, -0.2),
            row("r20", "pi", "onnx", 8.0, 0.0), row("pruned", "pi", "tflite-int8", 2.0, -1.5),
            row("r20", "epyc", "tflite-fp32", 2.3, 0.0), row("r20", "epyc", "tflite-int8", 2.83, -0.1)]
    hosts = {("r20", "pi"): {"cpu": "Arm Cortex-A76", "isa": ["asimd", "asimddp"]}, ("pruned", "pi"): {},
             ("r20", "epyc"): {"cpu": "AMD EPYC 7B13", "isa": ["avx2"]}}
    notes = verdicts(rows, hosts, max_drop=1.0)
    assert "epyc: fastest within 1 point(s) of FP32: tflite-fp32 of r20 (2.300 ms p50, +0.00 top-1)" in notes
    # The pruned run's file is faster but 1.5 points down: outside the budget; with 2 points it wins.
    assert "pi: fastest within 1 point(s) of FP32: tflite-int8 of r20 (3.000 ms p50, -0.20 top-1)" in notes
    assert any(n.startswith("pi: fastest within 2 point(s) of FP32: tflite-int8 of pruned")
               for n in verdicts(rows, hosts, max_drop=2.0))
    assert any(n.startswith("r20 / epyc: tflite-int8 is not faster than tflite-fp32 here") and "AMD EPYC" in n
               for n in notes)
    assert any(n.startswith("r20 / pi: tflite-int8 is 3.0x faster") and "asimddp" in n for n in notes)


def test_bench_of_one_file_keeps_the_runs_other_rows_and_the_table_fits_100_columns(run_dir, tmp_path):
    out, _ = run_dir
    fast = ("--runs", "5", "--warmup", "1", "--limit", "20", "--threads", "1")
    whole = run_cli("bench", out, *fast, env={"COLUMNS": "100"})
    assert whole.returncode == 0, whole.stderr[-2000:]
    lines = whole.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    for target in ("tflite-int8", "openvino-int8", "onnx", "coreml-fp16"):
        assert any(line.startswith(f"│ {target} ") for line in lines), whole.stdout  # the name whole, not cut
    assert any(line.startswith("coreml-fp16 skipped: Core ML runs only on macOS") for line in lines)
    before = json.loads((out / "bench-local.json").read_text())
    tflite = out / "tflite-int8" / read_manifest(out / "tflite-int8").file
    single = run_cli("bench", tflite, *fast)
    assert single.returncode == 0, single.stderr[-2000:]
    after = json.loads((out / "bench-local.json").read_text())
    assert [row["target"] for row in after["results"]] == [row["target"] for row in before["results"]]
    rows = {row["target"]: row for row in after["results"]}
    assert rows["tflite-int8"]["latency"] != {r["target"]: r for r in before["results"]}["tflite-int8"]["latency"]
    assert rows["onnx"] == {r["target"]: r for r in before["results"]}["onnx"]  # untouched
    # Measured otherwise (another image count): beside the file, the run's result left as it was.
    other = run_cli("bench", tflite, "--runs", "5", "--warmup", "1", "--limit", "10", "--threads", "1")
    assert other.returncode == 0 and (out / "tflite-int8" / "bench-local.json").is_file()
    assert json.loads((out / "bench-local.json").read_text()) == after
