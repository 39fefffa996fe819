"""`edgeresnet prune` and `edgeresnet sensitivity` as a user runs them, and a pruned model through export."""

from __future__ import annotations

import json

import pytest

from tests.helpers import error_line, run_cli


@pytest.fixture(scope="module")
def cifar(shared):
    return {
        "model": shared / "models" / "cifar" / "resnet20_cifar10jpeg.pt",
        "test": shared / "datasets" / "cifar10-jpeg" / "test.zip",
        "train": shared / "datasets" / "cifar10-jpeg" / "train.zip",
    }


def test_prune_writes_a_model_that_export_and_bench_take(cifar, tmp_path):
    out = tmp_path / "pruned"
    result = run_cli("prune", cifar["model"], "--data", cifar["test"], "--train-data", cifar["train"], "--limit", "300",
                     "--macs", "2", "--remove-blocks", "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["macs_factor"] >= 2.0 and report["importance"] == "taylor"
    assert report["top1_before"] > 80 and report["top1_after"] > 20  # batch norms recalibrated: far above chance
    assert sorted(p.name for p in out.iterdir()) == ["channel-plan.json", "model.safetensors", "prune-report.json"]
    plan = json.loads((out / "channel-plan.json").read_text())
    assert plan["base"]["name"] == "resnet20" and plan["info"]["macs_factor"] == report["macs_factor"]

    # The pruned model is a model like any other: compress exports and verifies it, bench measures it.
    run = tmp_path / "run"
    result = run_cli("compress", out / "model.safetensors", "--data", cifar["test"], "--limit", "200",
                     "--target", "onnx,tflite-int8,openvino-int8", "--min-agreement", "80", "--out", run, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["target"]: row for row in json.loads(result.stdout)["results"]}
    assert rows["onnx"]["agreement"] == 100.0 and rows["tflite-int8"]["top1"] > 20
    manifest = json.loads((run / "tflite-int8" / "manifest.json").read_text())
    assert manifest["source_model"]["channel_plan"]["widths"] == plan["widths"]
    result = run_cli("bench", run, "--runs", "5", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["target"] for r in json.loads(result.stdout)["results"]} >= {"onnx", "tflite-int8", "openvino-int8"}


def test_sensitivity_report_renders_a_table_and_a_plot(cifar, tmp_path):
    out = tmp_path / "sensitivity"
    result = run_cli("sensitivity", cifar["model"], "--data", cifar["test"], "--limit", "200", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.splitlines()
    assert table[2].startswith("| layer | channels | ratio 0.25 | ratio 0.5 | ratio 0.75 |")
    assert any(line.startswith("| layer1.0.conv1 | 16 |") for line in table)
    report = json.loads((out / "sensitivity.json").read_text())
    assert len(report["layers"]) == 12  # nine blocks' inner widths, three stages' residual segments
    assert all(len(layer["top1"]) == 3 for layer in report["layers"])
    # Removing three quarters of a layer's channels costs accuracy somewhere.
    assert min(min(layer["top1"]) for layer in report["layers"]) < report["baseline_top1"] - 5
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flags, message", [
    (["--ratio", "1.5"], "invalid --ratio: Input should be less than or equal to 1"),
    (["--ratio", "0.5", "--macs", "2"], "give exactly one target of ratio, macs and latency_ms"),
    (["--macs", "100", "--importance", "l1"], "100.0x fewer MACs cannot be reached: the most pruning can give is"),
    (["--ratio", "1", "--importance", "l1"], "ratio 1.0 cannot be reached: the most pruning can give is ratio 0."),
    (["--latency-ms", "1", "--latency-target", "tflite-int9"], "unknown target 'tflite-int9'"),
])
def test_bad_pruning_flags_are_one_line(cifar, tmp_path, flags, message):
    out = tmp_path / "out"
    result = run_cli("prune", cifar["model"], "--data", cifar["test"], "--limit", "50", *flags, "--out", out)
    assert message in error_line(result)
    assert not out.exists()  # nothing half-written
