"""Accuracy, size and latency of every target for the two fine-tuned CIFAR baselines.

Runs `edgeresnet compress` on ResNet-20 and ResNet-56 (../shared/models/cifar), evaluating
on the 10,000 test images and calibrating on 256 training images, and writes the CLI's
JSON to benchmarks/results/cifar-<model>.json; prints a Markdown table.

    .venv/bin/python benchmarks/cifar_targets.py [--shared PATH]

Takes about 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("resnet20", "resnet56")
TARGETS = "tflite-int8,tflite-fp16,tflite-fp32,openvino-int8,openvino-fp16,openvino-fp32,onnx"


def run(model: str, shared: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "edgeresnet", "compress", str(shared / f"models/cifar/{model}_cifar10jpeg.pt"),
             "--data", str(shared / "datasets/cifar10-jpeg/test.zip"),
             "--train-data", str(shared / "datasets/cifar10-jpeg/train.zip"),
             "--target", TARGETS, "--out", str(Path(tmp) / "run"), "--json"],
            stdout=subprocess.PIPE, check=True, text=True,
        )
    return json.loads(result.stdout)


def table(reports: dict[str, dict]) -> str:
    lines = ["| model | target | size | top-1 | delta | agreement | p50 latency (batch 1, 2 threads) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for model, report in reports.items():
        for row in report["results"]:
            lines.append(f"| {model} | {row['target']} | {row['size_bytes'] / 1024:.0f} KB | {row['top1']:.2f}% | "
                         f"{row['delta_top1']:+.2f} | {row['agreement']:.2f}% | {row['latency']['p50_ms']:.2f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    args = parser.parse_args()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    reports = {}
    for model in MODELS:
        reports[model] = run(model, args.shared)
        (results / f"cifar-{model}.json").write_text(json.dumps(reports[model], indent=2) + "\n")
    print(table(reports))


if __name__ == "__main__":
    main()
