"""Table "ptq fidelity": int8 export with only the evaluation data, each file checked against its simulator.

For each CIFAR checkpoint of ../shared/models/cifar (the baselines fine-tuned on train.zip and
the published ones), runs, as a user with one labelled folder would:

    edgeresnet export MODEL --data test.zip --target tflite-int8,openvino-int8 --json

(no --train-data: test.zip calibrates too; no --min-agreement), and records per file what its
manifest says: agreement with the simulation of its runtime's integer arithmetic (the bar,
99.5%) and with float PyTorch (reported), on the 512 verification images; the top-1 and delta
on the 10,000 test images; and the command's wall time.

    .venv/bin/python benchmarks/ptq_fidelity.py [--models resnet20,resnet56,resnet20-12fca82f,resnet56-4bfd9763]

Writes benchmarks/results/ptq-fidelity.json; benchmarks/tables.py renders it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measuring import HERE, host

BIN = HERE.parent / ".venv" / "bin"
MODELS = "resnet20,resnet56,resnet20-12fca82f,resnet56-4bfd9763"


def checkpoint(shared: Path, model: str) -> Path:
    fine_tuned = shared / "models" / "cifar" / f"{model}_cifar10jpeg.pt"
    return fine_tuned if fine_tuned.exists() else shared / "models" / "cifar" / f"{model}.th"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ptq-fidelity.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            out = Path(tmp) / model
            cmd = [str(BIN / "edgeresnet"), "export", str(checkpoint(args.shared, model)),
                   "--data", str(args.shared / "datasets" / "cifar10-jpeg" / "test.zip"),
                   "--target", "tflite-int8,openvino-int8", "--out", str(out), "--json"]
            print(f"{model}: {' '.join(cmd)}", file=sys.stderr)
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = round(time.perf_counter() - start, 1)
            if done.returncode != 0:
                rows.append({"model": model, "exit_code": done.returncode, "seconds": seconds,
                             "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""})
                continue
            report = json.loads(done.stdout)
            fp32 = next(r for r in report["results"] if r["target"] == "pytorch-fp32")
            for result in report["results"]:
                if result["target"] == "pytorch-fp32":
                    continue
                manifest = json.loads((out / result["target"] / "manifest.json").read_text())
                rows.append({
                    "model": model, "target": result["target"], "exit_code": 0, "seconds": seconds,
                    "fp32_top1": fp32["top1"], "top1": result["top1"], "delta_top1": result["delta_top1"],
                    "simulation": manifest["fidelity"], "fp32": manifest["fidelity_fp32"],
                    "quantization": manifest["quantization"]})
                print(f"  {result['target']}: simulation {manifest['fidelity']['agreement']}%, "
                      f"fp32 {manifest['fidelity_fp32']['agreement']}%, top-1 {result['top1']} "
                      f"({result['delta_top1']:+.2f})", file=sys.stderr)
    result = {"what": "export --data test.zip --target tflite-int8,openvino-int8 (calibrated on test.zip, no "
                      "--min-agreement): each int8 file against its runtime's simulation and float PyTorch",
              "rows": rows, "host": host(), "date": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def table(path: Path = HERE / "results" / "ptq-fidelity.json") -> str:
    result = json.loads(path.read_text())
    lines = ["| model | target | agreement with its simulation (bar 99.5%) | agreement with FP32 | top-1 | delta "
             "| export wall time |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        if row["exit_code"] != 0:
            lines.append(f"| {row['model']} | failed | {row['error']} | | | | {row['seconds']} s |")
            continue
        lines.append(f"| {row['model']} | {row['target']} | {row['simulation']['agreement']:.2f}% of "
                     f"{row['simulation']['samples']} | {row['fp32']['agreement']:.2f}% | {row['top1']:.2f} | "
                     f"{row['delta_top1']:+.2f} | {row['seconds']} s |")
    h = result["host"]
    lines.append("")
    lines.append(f"On the 10,000 test images, {result['date']}. Host: {h['cpu']}, {h['cores']} cores.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
