"""Accuracy, size and latency of every target for the two fine-tuned CIFAR baselines.

Runs `edgeresnet compress` on ResNet-20 and ResNet-56 (../shared/models/cifar) to every
target, evaluating on the 10,000 test images and calibrating on 256 training images, and
once more for ResNet-20 with --image-input (the files apps embed). Core ML packages cannot
run on Linux: for coreml-w8a8 the script also evaluates the fake-quantized PyTorch module
the package was converted from (same calibration images), labelled as a simulation.
Writes the JSON to benchmarks/results/cifar-<run>.json and prints a Markdown table.

    .venv/bin/python benchmarks/cifar_targets.py [--shared PATH]

Takes about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("tflite-int8,tflite-fp16,tflite-fp32,openvino-int8,openvino-fp16,openvino-fp32,"
           "coreml-fp16,coreml-int8w,coreml-w8a8,onnx")
RUNS = {"resnet20": ("resnet20", False), "resnet56": ("resnet56", False), "resnet20-image-input": ("resnet20", True)}


def compress(model: str, shared: Path, image_input: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "edgeresnet", "compress", str(shared / f"models/cifar/{model}_cifar10jpeg.pt"),
             "--data", str(shared / "datasets/cifar10-jpeg/test.zip"),
             "--train-data", str(shared / "datasets/cifar10-jpeg/train.zip"),
             "--target", TARGETS, "--out", str(Path(tmp) / "run"), "--json", *(["--image-input"] if image_input else [])],
            stdout=subprocess.PIPE, check=True, text=True,
        )
    return json.loads(result.stdout)


def simulated_w8a8(model: str, shared: Path) -> dict:
    """Top-1 of the W8A8 fake-quantized module on the test set: what the Linux export can measure."""
    import edgeresnet
    from edgeresnet.data import normalize, open_dataset
    from edgeresnet.evaluate import evaluate
    from edgeresnet.export.coreml.w8a8 import quantize_w8a8
    from edgeresnet.stages.ptq import calibrate

    fp32 = edgeresnet.load_model(shared / f"models/cifar/{model}_cifar10jpeg.pt")
    calibration = calibrate(fp32, open_dataset(shared / "datasets/cifar10-jpeg/train.zip"))  # compress's defaults
    quantized = quantize_w8a8(fp32, normalize(calibration.pixels, fp32.preprocess))
    accuracy = evaluate(quantized.predictor(2), open_dataset(shared / "datasets/cifar10-jpeg/test.zip"),
                        fp32.preprocess, progress="coreml-w8a8 (simulated)")
    return {"target": "coreml-w8a8", "simulated_in": "PyTorch (coremltools.optimize.torch fake quantization)",
            "top1": accuracy.top1, "top5": accuracy.top5, "samples": accuracy.n}


def table(reports: dict[str, dict]) -> str:
    lines = ["| run | target | size | top-1 | delta | agreement | p50 latency (batch 1, 2 threads) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, report in reports.items():
        baseline = report["results"][0]["top1"]
        simulated = report.get("simulated", {})
        for row in report["results"]:
            size = f"{row['size_bytes'] / 1024:.0f} KB"
            if row["top1"] is not None:
                lines.append(f"| {name} | {row['target']} | {size} | {row['top1']:.2f}% | {row['delta_top1']:+.2f} | "
                             f"{row['agreement']:.2f}% | {row['latency']['p50_ms']:.2f} ms |")
            elif row["target"] in simulated:
                top1 = simulated[row["target"]]["top1"]
                lines.append(f"| {name} | {row['target']} | {size} | {top1:.2f}% (simulated) | "
                             f"{top1 - baseline:+.2f} | needs macOS | needs macOS |")
            else:
                lines.append(f"| {name} | {row['target']} | {size} | needs macOS | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    args = parser.parse_args()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    reports = {}
    for name, (model, image_input) in RUNS.items():
        report = compress(model, args.shared, image_input)
        if not image_input:
            report["simulated"] = {"coreml-w8a8": simulated_w8a8(model, args.shared)}
        reports[name] = report
        (results / f"cifar-{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(reports))


if __name__ == "__main__":
    main()
