"""Table "ptq settings": which ptq stage settings to ship, measured in the TFLite simulator.

The simulator is what the tflite-int8 file computes (tflite_exact_fidelity.py: bit-identical
for these models), so its top-1 on the 10,000 test images is the file's. For each model and
calibration draw (256 train images, seeded), each setting of the ptq stage: activation ranges
(minmax, mse, percentile 99.99), bias correction on or off, and learned rounding (AdaRound,
with --adaround), with the seconds it took.

    .venv/bin/python benchmarks/ptq_settings.py [--models resnet20,resnet56-4bfd9763] [--seeds 0,1] [--adaround]

Writes benchmarks/results/ptq-settings.json; benchmarks/tables.py renders it.
"""

from __future__ import annotations

import argparse
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
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default="resnet20,resnet56-4bfd9763")
    parser.add_argument("--seeds", default="0,1")
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
    settings = SETTINGS + ([{"ranges": "minmax", "bias_correction": True, "rounding": "adaround"}]
                           if args.adaround else [])
    rows = []
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
        for seed in (int(s) for s in args.seeds.split(",")):
            pixels = sample_pixels(train, model.preprocess, 256, seed=seed)
            for setting in settings:
                start = time.perf_counter()
                quantized = ptq(model, pixels, "tflite", PtqConfig(seed=seed, **setting))
                seconds = round(time.perf_counter() - start, 1)
                accuracy = top1(quantized.module)
                rows.append({"model": name, "seed": seed, **setting, "fp32_top1": fp32, "top1": accuracy,
                             "delta_top1": round(accuracy - fp32, 2), "seconds": seconds})
                print(rows[-1], file=sys.stderr, flush=True)
                args.out.write_text(json.dumps({"rows": rows, "host": host(), "date": time.strftime("%Y-%m-%d")},
                                               indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def table(path: Path = HERE / "results" / "ptq-settings.json") -> str:
    result = json.loads(path.read_text())
    lines = ["| model | calibration draw | ranges | bias correction | rounding | top-1 (FP32) | delta | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['seed']} | {r['ranges']} | {'yes' if r['bias_correction'] else 'no'} | "
                     f"{r.get('rounding', 'nearest')} | {r['top1']:.2f} ({r['fp32_top1']:.2f}) | "
                     f"{r['delta_top1']:+.2f} | {r['seconds']} |")
    h = result["host"]
    lines += ["", f"In the TFLite simulator, on the 10,000 test images, {result['date']}. Host: {h['cpu']}, "
                  f"{h['cores']} cores (shared with other work: seconds are upper bounds)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
