"""Table "ptq settings": which ptq stage settings to ship, measured in each runtime's simulator.

The simulators compute what the files compute (tflite: tflite_exact_fidelity.py, bit-identical
for these models; openvino: openvino_cpu_fidelity.py, 99.99% agreement), so their top-1 on the
10,000 test images is the files'. For each model, runtime and calibration draw (train images,
seeded), each setting of the ptq stage: activation ranges (minmax, mse, percentile 99.99), bias
correction on or off, the number of calibration images, and learned rounding (AdaRound, with
--adaround), with the seconds it took; beside them, the best raw pipeline's top-1 on the same
model (from the paired-ptq-<model>.json files paired_accuracy.py wrote), which the issue asks
edgeresnet's files to match.

    .venv/bin/python benchmarks/ptq_settings.py [--models resnet20,resnet56-4bfd9763] [--schemes tflite,openvino]
        [--seeds 0] [--settings 0,1,2,3] [--adaround]

Writes benchmarks/results/ptq-settings.json; benchmarks/tables.py renders it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from measuring import HERE, host

SETTINGS = [
    {"ranges": "minmax", "bias_correction": False},
    {"ranges": "minmax", "bias_correction": True},
    {"ranges": "mse", "bias_correction": False},
    {"ranges": "mse", "bias_correction": True},
    {"ranges": "percentile", "bias_correction": True},
    {"ranges": "minmax", "bias_correction": True, "size": 1024},
]
RAW_TARGET = {"tflite": "tflite-int8", "openvino": "openvino-int8"}


def best_raw(model: str) -> dict | None:
    """The best raw pipeline's file on ``model`` (paired_accuracy.py's results), or None."""
    path = HERE / "results" / f"paired-ptq-{model}.json"
    if not path.exists():
        return None
    files = [f for f in json.loads(path.read_text())["files"] if f["pipeline"].startswith("raw ")]
    best = max(files, key=lambda f: f["top1"])
    return {"pipeline": f"{best['pipeline'][4:]} {best['target']}", "top1": best["top1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default="resnet20,resnet56-4bfd9763")
    parser.add_argument("--schemes", default="tflite,openvino")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--settings", default=None,
                        help="comma-separated indices into SETTINGS (default: all; empty: none, e.g. with --adaround)")
    parser.add_argument("--adaround", action="store_true", help="also rounding: adaround (minutes per model)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ptq-settings.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    import edgeresnet
    from edgeresnet.data import normalize, open_dataset, sample_pixels
    from edgeresnet.stages.ptq import PtqConfig, ptq

    torch.set_num_threads(2)
    data = args.shared / "datasets" / "cifar10-jpeg"
    test, train = open_dataset(data / "test.zip"), open_dataset(data / "train.zip")
    chosen = SETTINGS if args.settings is None else [SETTINGS[int(i)] for i in args.settings.split(",") if i]
    settings = chosen + ([{"ranges": "minmax", "bias_correction": True, "rounding": "adaround"}]
                           if args.adaround else [])
    # Rows of other models and settings are kept (rows from before runtimes were compared are not).
    rows = [r for r in json.loads(args.out.read_text())["rows"] if "scheme" in r] if args.out.exists() else []
    for name in args.models.split(","):
        fine_tuned = args.shared / "models" / "cifar" / f"{name}_cifar10jpeg.pt"
        model = edgeresnet.load_model(fine_tuned if fine_tuned.exists() else args.shared / "models" / "cifar" / f"{name}.th")
        images = torch.from_numpy(normalize(sample_pixels(test, model.preprocess, len(test), seed=0), model.preprocess))
        labels = torch.from_numpy(np.asarray(test.subset(len(test), seed=0).labels))

        def top1(module) -> float:
            with torch.no_grad():
                predictions = torch.cat([module(batch).argmax(1) for batch in images.split(500)])
            return round(float((predictions == labels).float().mean()) * 100, 2)

        fp32 = top1(model.module.eval())
        raw = best_raw(name)
        for seed, scheme, setting in itertools.product([int(s) for s in args.seeds.split(",")],
                                                       args.schemes.split(","), settings):
            config = PtqConfig(seed=seed, **setting)
            key = {"model": name, "scheme": scheme, "seed": seed, "ranges": config.ranges,
                   "bias_correction": config.bias_correction, "size": config.size, "rounding": config.rounding}
            rows = [r for r in rows if {k: r.get(k) for k in key} != key]  # a rerun replaces its row
            pixels = sample_pixels(train, model.preprocess, config.size, seed=seed)
            start = time.perf_counter()
            quantized = ptq(model, pixels, scheme, config)
            seconds = round(time.perf_counter() - start, 1)
            accuracy = top1(quantized.module)
            rows.append({**key, "fp32_top1": fp32, "top1": accuracy, "delta_top1": round(accuracy - fp32, 2),
                         "best_raw": raw and {**raw, "delta": round(accuracy - raw["top1"], 2)}, "seconds": seconds})
            print(rows[-1], file=sys.stderr, flush=True)
            args.out.write_text(json.dumps({"rows": rows, "host": host(), "date": time.strftime("%Y-%m-%d")},
                                           indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def table(path: Path = HERE / "results" / "ptq-settings.json") -> str:
    result = json.loads(path.read_text())
    lines = ["| model | runtime | draw | images | ranges | bias correction | rounding | top-1 (FP32) | delta | "
             "vs best raw | seconds |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        raw = r.get("best_raw")
        versus = f"{raw['delta']:+.2f} ({raw['pipeline']} {raw['top1']:.2f})" if raw else "-"
        lines.append(f"| {r['model']} | {r.get('scheme', 'tflite')} | {r['seed']} | {r.get('size', 256)} | "
                     f"{r['ranges']} | {'yes' if r['bias_correction'] else 'no'} | {r.get('rounding', 'nearest')} | "
                     f"{r['top1']:.2f} ({r['fp32_top1']:.2f}) | {r['delta_top1']:+.2f} | {versus} | {r['seconds']} |")
    h = result["host"]
    lines += ["", f"In each runtime's simulator, on the 10,000 test images, {result['date']}. Host: {h['cpu']}, "
                  f"{h['cores']} cores (shared with other work: seconds are upper bounds)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
