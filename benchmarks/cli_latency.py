"""Table "cli latency": how long the console script takes to answer a mistake, and to list models and targets.

A typo should cost a user well under a second, not a PyTorch import: each command runs
--repeats times in a fresh process (`edgeresnet ...`, as typed), and the median wall time is
recorded with its answer's first line. The goal (issue 25) is under one second for each.

    .venv/bin/python benchmarks/cli_latency.py [--repeats 5]

Writes benchmarks/results/cli-latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from measuring import BIN, HERE, host

GOAL_SECONDS = 1.0


def commands(tmp: Path) -> dict[str, list[str]]:
    occupied = tmp / "occupied"
    occupied.mkdir(exist_ok=True)
    (occupied / "keep.txt").write_text("a file of the user's")
    return {
        "unknown target": ["compress", "--target", "tflite-int9"],
        "missing model": ["compress", str(tmp / "missing.pt"), "--target", "tflite-int8", "--data", "samples"],
        "occupied --out": ["compress", "--target", "tflite-int8", "--out", str(occupied)],
        "models": ["models"],
        "targets": ["targets"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in commands(Path(tmp)).items():
            seconds, answer = [], ""
            for _ in range(args.repeats):
                start = time.perf_counter()
                done = subprocess.run([str(BIN / "edgeresnet"), *command], capture_output=True, text=True)
                seconds.append(time.perf_counter() - start)
                answer = (done.stderr.strip() or done.stdout.strip()).splitlines()[0]
            median = statistics.median(seconds)
            rows.append({"case": name, "command": "edgeresnet " + " ".join(command).replace(tmp, "TMP"),
                         "median_s": round(median, 3), "max_s": round(max(seconds), 3),
                         "exit_code": done.returncode, "answer": answer.replace(tmp, "TMP"),
                         "meets_goal": median < GOAL_SECONDS})
            print(f"{name:<16} {median:6.2f} s  {rows[-1]['answer'][:90]}", flush=True)
    out = HERE / "results" / "cli-latency.json"
    out.write_text(json.dumps({"host": host(), "goal_seconds": GOAL_SECONDS, "repeats": args.repeats,
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
