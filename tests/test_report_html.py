"""`edgeresnet report` of two runs, a pruned one and the unpruned one: every plot and the HTML show
both, and the HTML, as headless Chromium renders it, says where and how each was measured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgeresnet.reporting.plots import size_bars
from edgeresnet.reporting.sources import load_sources

from helpers import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# Headless and offline: without the background-networking flags Chromium dials out at every start.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    fast = ("--runs", "10", "--warmup", "2", "--threads", "1")
    pruned = tmp / "pruned-model"
    assert run_cli("prune", "--data", "samples", "--ratio", "0.3", "--out", pruned).returncode == 0
    for name, model in (("unpruned", ()), ("pruned", (pruned / "model.safetensors",))):
        made = run_cli("compress", *model, "--data", "samples", "--target", "onnx,openvino-fp32,coreml-fp16",
                       "--out", tmp / name)
        assert made.returncode == 0, made.stderr[-2000:]
        benched = run_cli("bench", tmp / name, *fast)
        assert benched.returncode == 0, benched.stderr[-2000:]
    out = tmp / "comparison"
    reported = run_cli("report", tmp / "unpruned", tmp / "pruned", "--out", out)
    assert reported.returncode == 0, reported.stderr[-2000:]
    return tmp, out


def test_every_plot_shows_both_runs(runs):
    tmp, out = runs
    rows, sources = load_sources([tmp / "unpruned", tmp / "pruned"])
    bars = size_bars(rows)
    for run in ("unpruned", "pruned"):
        assert {target for name, _, bar_run in bars if bar_run == run for target in [name.split(" ")[0]]} == \
            {"onnx", "openvino-fp32"}
    sizes = {name: kb for name, kb, _ in bars}
    assert sizes["onnx (pruned)"] < sizes["onnx (unpruned)"]  # the pruned model's file is smaller
    assert {row.label for row in rows if row.samples_ms} == {"unpruned / local", "pruned / local"}
    for plot in ("latency_vs_accuracy.png", "size_per_target.png", "latency_distribution.png"):
        assert (out / plot).stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium; .ci/run installs it)")
def test_html_as_chromium_renders_it_names_host_date_threads_and_every_target(runs, tmp_path):
    _, out = runs
    page = (out / "comparison.html").resolve().as_uri()
    flags = (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}")
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert "<h2>Measured on</h2>" in dom
    for run in ("unpruned", "pruned"):
        line = next(item for item in dom.split("<li>") if item.startswith(f"{run} / local: "))
        assert "1 threads" in line and "10 timed runs" in line and "measured 20" in line  # threads, runs, date
        assert ("Intel" in line or "AMD" in line or "CPU" in line)  # the host's CPU
        assert f"{run} / local: coreml-fp16 skipped: Core ML runs only on macOS" in dom  # not silently dropped
        for target in ("onnx", "openvino-fp32"):
            assert f"<td>{run}</td><td>local</td><td>{target}</td>" in dom
    shot = tmp_path / "comparison.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1400", page],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # rendered: the table and the three plots
