"""Runs stopped at random points, by SIGINT, SIGTERM or SIGKILL, resume to the result of a run
that was never stopped, and never leave a run directory that looks finished but is not.

One chain of runs is stopped again and again: each stop lands somewhere in what is left
(loading, pruning, distillation, QAT, export, evaluation, the report), and `--resume`
continues from there. EDGERESNET_KILLS sets the number of stops (default 10) and
EDGERESNET_KILL_SEED their times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, make_tiny_compress_inputs

KILLS = int(os.environ.get("EDGERESNET_KILLS", "10"))
SEED = int(os.environ.get("EDGERESNET_KILL_SEED", "0"))
# Mostly the signals that ask for a clean stop; SIGKILL, which cannot be caught, now and then.
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
RECIPE = """name: every-stage
stages:
  - prune: {ratio: 0.25}
  - distill: {epochs: 3, batch_size: 16, lr: 0.01}
  - qat: {epochs: 2, batch_size: 16, calibration_images: 16}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_tiny_compress_inputs(tmp_path_factory.mktemp("interrupted"))
    (root / "recipe.yaml").write_text(RECIPE)
    return root


def test_runs_stopped_at_random_points_resume_to_the_uninterrupted_result(tiny, tmp_path):
    args = [tiny / "resnet8.pt", "--data", tiny / "test", "--train-data", tiny / "train",
            "--recipe", tiny / "recipe.yaml", "--target", "openvino-int8", "--threads", "1"]
    whole = _start(args, tmp_path / "whole", tmp_path / "whole.log")
    began = _working(whole, tmp_path / "whole.log")
    assert whole.wait(timeout=600) == 0, _tail(tmp_path / "whole.log")
    work_seconds = time.monotonic() - began  # from the first line the run prints to its end
    expected = _result(tmp_path / "whole")

    rng = random.Random(SEED)
    stops: list[str] = []
    chain, chains, resume = 0, 0, False
    out = tmp_path / "run-0"
    deadline = time.monotonic() + 1200
    while len(stops) < KILLS:
        assert time.monotonic() < deadline, f"only {len(stops)} stops in 20 minutes: {stops}"
        signum = SIGNALS[len(stops) % len(SIGNALS)]
        log = tmp_path / f"stop-{len(stops)}.log"
        process = _start(args + (["--resume"] if resume else []), out, log)
        began = _working(process, log)
        try:
            process.wait(timeout=rng.uniform(0, work_seconds))
        except subprocess.TimeoutExpired:
            process.send_signal(signum)
            process.wait(timeout=120)
        stderr = log.read_text()
        if process.returncode == 0 or out.exists():  # finished before the signal came: start another chain
            # A signal after the run finished may still end the process while it exits.
            assert process.returncode in (0, 128 + signum, -signum), _tail(log)
            assert _result(out) == expected, f"resumed after {stops[-chain:] if chain else []}"
            if not chain:  # a whole run, from scratch: stops are drawn within its length from now on (the
                # first run of all may have compiled NNCF's kernels, a minute no later run spends)
                work_seconds = min(work_seconds, time.monotonic() - began)
            chain, resume, chains = 0, False, chains + 1
            out = tmp_path / f"run-{chains}"
            continue
        stops.append(f"{signal.Signals(signum).name} after {_last_step(stderr)}")
        chain += 1
        assert "Traceback" not in stderr, stderr[-3000:]
        if signum != signal.SIGKILL:  # a clean stop: one line, the shell's exit code
            assert process.returncode == 128 + signum, stderr[-3000:]
            assert stderr.strip().splitlines()[-1] == f"error: interrupted by {signal.Signals(signum).name}."
        # Never a run directory that looks finished but is not.
        assert not out.exists() or _result(out) == expected
        resume = True

    if not out.exists():
        finished = _start(args + ["--resume"], out, tmp_path / "final.log")
        assert finished.wait(timeout=600) == 0, _tail(tmp_path / "final.log")
    assert _result(out) == expected, stops
    assert not list(tmp_path.glob(".*partial*")), "a finished run leaves no staging behind"
    print("\n".join(["stopped:", *stops]))


def _start(args, out: Path, log: Path) -> subprocess.Popen:
    # Progress goes to a file: a pipe nobody reads would fill up and stall the run.
    with log.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "edgeresnet", "compress", *map(str, args), "--out", str(out)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                                env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _working(process: subprocess.Popen, log: Path) -> float:
    """Wait until the run prints its first line (Python and torch are loaded); when that was."""
    deadline = time.monotonic() + 120
    while log.stat().st_size == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return time.monotonic()


def _result(run: Path) -> dict:
    """What a finished run produced: each artifact's hash and measured top-1."""
    report = json.loads((run / "report.json").read_text())
    manifests = {m.parent.name: json.loads(m.read_text())["sha256"] for m in run.glob("*/manifest.json")}
    return {"top1": {row["target"]: row["top1"] for row in report["results"]}, "files": manifests,
            "stages": [(s["stage"], s["top1"]) for s in report["stages"]]}


def _last_step(stderr: str) -> str:
    steps = [line.split(" done in")[0].split(":")[0] for line in stderr.splitlines()
             if " done in " in line or line.startswith("epoch ")]
    return steps[-1] if steps else "start"


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


def test_a_stop_while_a_file_is_written_leaves_the_old_file(tmp_path, monkeypatch):
    """manifest.json, metrics.json and the channel plan are written whole or not at all: a run
    stopped mid-write once left an empty manifest.json that its resume then failed to read."""
    from edgeresnet.rundir import write_atomically

    path = tmp_path / "manifest.json"
    path.write_text('{"file": "old"}\n')
    write_text = Path.write_text

    def stopped_halfway(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt  # what a SIGINT raises

    monkeypatch.setattr(Path, "write_text", stopped_halfway)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, '{"file": "new"}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"file": "old"}\n'
    write_atomically(path, '{"file": "new"}\n')
    assert path.read_text() == '{"file": "new"}\n' and not (tmp_path / "manifest.json.partial").exists()
