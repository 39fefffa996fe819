"""Table "ptq time": how long `compress --recipe ptq-int8` takes a CIFAR ResNet to both int8 targets.

Runs, as a user would, on the fine-tuned ResNet-56 of ../shared (and any --models given):

    edgeresnet compress MODEL --recipe ptq-int8 --target tflite-int8,openvino-int8
        --data test.zip --train-data train.zip --threads 2

--repeats times, in a fresh process each, and records the wall time and peak memory of each
run and the seconds of every stage from its report (evaluate-fp32 and evaluate-<target>
score the 10,000 test images; export holds the ptq stage, both conversions and both checks).
The goal is at most 3 minutes for the whole command on 2 cores (benchmarks/README.md, table 7);
the ResNet-50 cost against the raw vendor steps is scaling.py's.

    .venv/bin/python benchmarks/ptq_time.py [--models resnet56] [--repeats 2]

Writes benchmarks/results/ptq-time.json; benchmarks/tables.py renders it. Under 3 minutes a
run on an idle host: do not run it beside other work.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from measuring import BIN, HERE, host, timed
from ptq_fidelity import checkpoint

GOAL_SECONDS = 180.0
TARGETS = "tflite-int8,openvino-int8"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default="resnet56")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    data = args.shared / "datasets" / "cifar10-jpeg"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for repeat in range(args.repeats):
                run = Path(tmp) / f"{model}-{repeat}"
                command = [str(BIN / "edgeresnet"), "compress", str(checkpoint(args.shared, model)),
                           "--recipe", "ptq-int8", "--target", TARGETS, "--data", str(data / "test.zip"),
                           "--train-data", str(data / "train.zip"), "--threads", "2", "--out", str(run)]
                cost = timed(command, Path(tmp) / f"{model}-{repeat}.log")
                report = json.loads((run / "report.json").read_text())
                stages = report["seconds"]
                evaluation = sum(v for k, v in stages.items() if k.startswith("evaluate"))
                rows.append({"model": model, "repeat": repeat, **cost, "seconds_per_stage": stages,
                             "seconds_without_evaluation": round(cost["seconds"] - evaluation, 1),
                             "meets_goal": cost["seconds"] <= GOAL_SECONDS,
                             "top1": {r["target"]: r["top1"] for r in report["results"]}})
                print(json.dumps(rows[-1]), flush=True)
    out = HERE / "results" / "ptq-time.json"
    out.write_text(json.dumps({
        "command": "edgeresnet compress MODEL --recipe ptq-int8 --target " + TARGETS +
                   " --data test.zip --train-data train.zip --threads 2",
        "goal_seconds": GOAL_SECONDS, "rows": rows, "date": time.strftime("%Y-%m-%d"), "host": host()},
        indent=2) + "\n")
    print(f"wrote {out}")


def table(path: Path = HERE / "results" / "ptq-time.json") -> str:
    data = json.loads(path.read_text())
    lines = ["| model | run | wall s | of which scoring 10,000 images | export (ptq, conversions, checks) s | "
             "peak MB | at most 3 min |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        stages = r["seconds_per_stage"]
        scoring = sum(v for k, v in stages.items() if k.startswith("evaluate"))
        lines.append(f"| {r['model']} | {r['repeat'] + 1} | {r['seconds']:.1f} | {scoring:.1f} | "
                     f"{stages.get('export', 0):.1f} | {r['peak_rss_mb']:.0f} | {'yes' if r['meets_goal'] else 'no'} |")
    h = data["host"]
    lines += ["", f"`{data['command']}`, {data['date']}. Host: {h['cpu']}, {h['cores']} cores, idle."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
