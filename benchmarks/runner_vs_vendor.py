"""Does `edgeresnet bench` measure what the vendors' own tools measure?

For the fine-tuned ResNet-20's tflite-int8 and openvino-int8 files, compares the runner's
p50 latency with `litert-benchmark`'s median and `benchmark_app`'s median, on the same
file, threads and number of runs, in alternating rounds (this machine is shared: a
disturbance then hits both sides). Also checks that the runner's top-1 equals what
export measured. Writes benchmarks/results/runner-vs-vendor.json, prints a table.

    .venv/bin/python benchmarks/runner_vs_vendor.py [--shared PATH] [--runs 500] [--rounds 3]

Takes about 2 minutes on 2 cores (default 3 rounds of 500 runs).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
THREADS = 2
TOLERANCE = 0.10  # the runner's p50 within 10% of the vendor tool's median
LIMIT = 2000  # test images that export and bench both evaluate on (the same seeded subset)


def litert_median_ms(model: Path, runs: int, warmup: int, workdir: Path) -> float:
    result = workdir / "litert.json"
    subprocess.run([str(BIN / "litert-benchmark"), "--model", str(model), "--num_threads", str(THREADS),
                    "--num_runs", str(runs), "--warmup_runs", str(warmup), "--result_json", str(result)],
                   check=True, capture_output=True, cwd=workdir)
    return float(json.loads(result.read_text())["latency"]["median_ms"])


def benchmark_app_median_ms(model: Path, runs: int) -> float:
    # f32 as the runner pins it (see runner/openvino.py); sync API, one stream: one inference at a time.
    done = subprocess.run([str(BIN / "benchmark_app"), "-m", str(model), "-d", "CPU", "-niter", str(runs),
                           "-nthreads", str(THREADS), "-nstreams", "1", "-hint", "none", "-api", "sync",
                           "-infer_precision", "f32"], check=True, capture_output=True, text=True,
                          env={"CI": "true", "PATH": "/usr/bin:/bin"})
    value, unit = re.search(r"Median:\s+([0-9.]+) (ms|us)", done.stdout).groups()
    return float(value) / (1000.0 if unit == "us" else 1.0)


def runner_p50_ms(artifact_dir: Path, runs: int, warmup: int, data: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "edgeresnet", "bench", str(artifact_dir), "--threads", str(THREADS),
                           "--runs", str(runs), "--warmup", str(warmup), "--data", str(data), "--limit", str(LIMIT),
                           "--json"], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)["results"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tools = {"tflite-int8": "litert-benchmark", "openvino-int8": "benchmark_app"}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "edgeresnet", "compress",
                        str(args.shared / "models/cifar/resnet20_cifar10jpeg.pt"),
                        "--data", str(args.shared / "datasets/cifar10-jpeg/test.zip"), "--limit", str(LIMIT),
                        "--train-data", str(args.shared / "datasets/cifar10-jpeg/train.zip"),
                        "--target", ",".join(tools), "--out", str(run), "--json"],
                       check=True, capture_output=True)
        rows = []
        for target, tool in tools.items():
            manifest = json.loads((run / target / "manifest.json").read_text())
            model = run / target / manifest["file"]
            ours, theirs, accuracy = [], [], None
            for _ in range(args.rounds):
                result = runner_p50_ms(run / target, args.runs, args.warmup,
                                       args.shared / "datasets/cifar10-jpeg/test.zip")
                ours.append(result["latency"]["p50_ms"])
                accuracy = result["accuracy"]["top1"]
                theirs.append(litert_median_ms(model, args.runs, args.warmup, Path(tmp)) if tool == "litert-benchmark"
                              else benchmark_app_median_ms(model, args.runs))
            runner, vendor = statistics.median(ours), statistics.median(theirs)
            # Each round's two numbers were taken back to back: their ratio cancels slow drifts of the host.
            ratio = statistics.median(o / t for o, t in zip(ours, theirs))
            rows.append({
                "target": target, "vendor_tool": tool, "threads": THREADS, "runs": args.runs, "rounds": args.rounds,
                "runner_p50_ms": runner, "vendor_median_ms": vendor, "ratio": ratio,
                "within_tolerance": abs(ratio - 1) <= TOLERANCE,
                "runner_rounds_ms": ours, "vendor_rounds_ms": theirs,
                "runner_top1": round(accuracy, 2), "export_top1": manifest["accuracy"]["top1"],
                "accuracy_equal": round(accuracy, 2) == round(manifest["accuracy"]["top1"], 2),  # percent of the same images
            })
    from edgeresnet.runner.host import host_info

    results = {"host": host_info(THREADS), "tolerance": TOLERANCE, "results": rows}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "runner-vs-vendor.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| target | vendor tool | runner p50 | vendor median | ratio (median of rounds) | top-1 (runner / export) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['target']} | {row['vendor_tool']} | {row['runner_p50_ms']:.3f} ms | "
              f"{row['vendor_median_ms']:.3f} ms | {row['ratio']:.2f} | "
              f"{row['runner_top1']:.2f}% / {row['export_top1']:.2f}% |")


if __name__ == "__main__":
    main()
