"""What the table scripts share: a step's wall time and peak memory, and a file measured the runner's way.

Every step and every measurement runs in a fresh child process, so that its peak resident
memory is its own and no runtime's threads linger into the next one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

# Runs a command and reports the peak resident memory of its largest process (Linux: KiB).
_PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def timed(command: list[str], log: Path) -> dict:
    """Run ``command`` (output to ``log``); its wall seconds and the peak RSS of its largest process."""
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-c", _PEAK, *command], stdout=out, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed ({done.returncode}): see {log}\n{done.stderr[-2000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1)}


def measure_file(artifact: Path, pixels: Path, labels: Path | None, threads: int, preprocess: dict,
                 runs: int = 300, warmup: int = 30, image_input: bool = False) -> dict:
    """The runner's own measuring child (edgeresnet.runner.measure) on one file."""
    with tempfile.TemporaryDirectory() as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({
            "artifact": str(artifact), "image_input": image_input, "preprocess": preprocess,
            "pixels": str(pixels), "labels": str(labels) if labels else None, "threads": threads,
            "device": "CPU", "batch": 1, "runs": runs, "warmup": warmup}))
        subprocess.run([sys.executable, "-m", "edgeresnet.runner.measure", str(job), str(result)], check=True)
        return json.loads(result.read_text())


def host() -> dict:
    from edgeresnet.runner.host import host_info

    return host_info()


def file_against_simulators(test, preprocess, batch_size: int, run_file, simulators: dict, progress: str):
    """Every image of ``test`` through the file (``run_file``: a normalised NCHW batch -> logits)
    and through each PyTorch simulator: (logits per name, "file" first; labels; seconds per name)."""
    import numpy as np

    from edgeresnet.data import batches

    runners = {"file": run_file, **{name: _no_grad(module) for name, module in simulators.items()}}
    logits: dict[str, list] = {name: [] for name in runners}
    seconds = dict.fromkeys(runners, 0.0)
    labels = []
    for inputs, batch_labels in batches(test, preprocess, batch_size, progress=progress):
        for name, run in runners.items():
            start = time.perf_counter()
            logits[name].append(run(inputs))
            seconds[name] += time.perf_counter() - start
        labels.append(batch_labels)
    return {k: np.concatenate(v) for k, v in logits.items()}, np.concatenate(labels), seconds


def _no_grad(module):
    import torch

    def run(inputs):
        with torch.no_grad():
            return module(torch.from_numpy(inputs)).numpy()
    return run


def logit_differences(file, other, step: float, labels) -> dict:
    """How closely ``other``'s logits follow the file's, in output steps (the logits' quantization step)."""
    difference = abs(file - other) / step
    return {
        "top1": round(100 * float((other.argmax(1) == labels).mean()), 2),
        "agreement_with_file": round(100 * float((file.argmax(1) == other.argmax(1)).mean()), 2),
        "disagreeing_images": int((file.argmax(1) != other.argmax(1)).sum()),
        "images_with_identical_logits": round(100 * float((difference.max(1) == 0).mean()), 2),
        "max_logit_difference_steps": round(float(difference.max()), 4),
        "mean_logit_difference_steps": round(float(difference.mean()), 5),
        "images_off_by_more_than_one_step": int((difference.max(1) > 1.001).sum()),
    }
