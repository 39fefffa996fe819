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
