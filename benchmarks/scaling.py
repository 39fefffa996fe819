"""Table 2: how the cost of `compress --recipe ptq-int8` to every target grows with depth.

For resnet18, resnet50 and resnet101 (torchvision layout, random weights seeded 0, 10
classes, 224x224 after the ImageNet resize and crop), runs the CLI on 100 CIFAR-10 test
images (upscaled by the preprocessing; 256 calibration images from train.zip) and records
its wall time, the peak memory of its largest process, the seconds of every stage and every
target's p50 latency at 2 threads. For resnet50 it also times the same vendor steps done by
hand (benchmarks/raw_all_targets.py), the cost edgeresnet must stay within 1.5x of.

    .venv/bin/python benchmarks/scaling.py [--models resnet18,resnet50,resnet101]

Writes benchmarks/results/scaling.json. About 25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from measuring import BIN, HERE, host, timed

IMAGES = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default="resnet18,resnet50,resnet101")
    parser.add_argument("--raw", default="resnet50", help="models whose raw vendor steps are timed too")
    args = parser.parse_args()

    import torch

    import edgeresnet
    from edgeresnet.data import open_dataset, sample_pixels
    from edgeresnet.export.targets import TARGETS
    from edgeresnet.models.summary import count_macs

    data = args.shared / "datasets" / "cifar10-jpeg"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for arch in args.models.split(","):
            torch.manual_seed(0)
            module = edgeresnet.models.create(arch, num_classes=10).eval()
            checkpoint = tmp / f"{arch}.pt"
            torch.save(module.state_dict(), checkpoint)
            run = tmp / arch
            profile = tmp / f"{arch}.prof"
            cost = timed([sys.executable, "-m", "cProfile", "-o", str(profile), str(BIN / "edgeresnet"), "compress", str(checkpoint), "--data", str(data / "test.zip"),
                          "--limit", str(IMAGES), "--train-data", str(data / "train.zip"), "--recipe", "ptq-int8",
                          "--target", ",".join(TARGETS), "--out", str(run), "--threads", "2"], tmp / f"{arch}.log")
            report = json.loads((run / "report.json").read_text())
            row = {"model": arch, "gmacs": count_macs(module, 224) / 1e9, **cost,
                   "seconds_per_stage": report["seconds"], "seconds_per_step": _profiled_steps(profile),
                   "p50_ms": {r["target"]: r["latency"]["p50_ms"] for r in report["results"] if r["latency"]}}
            if arch in args.raw.split(","):
                model = edgeresnet.load_model(checkpoint)
                calibration = tmp / "calibration.npy"
                np.save(calibration, sample_pixels(open_dataset(data / "train.zip"), model.preprocess, 256, seed=0))
                raw = timed([sys.executable, str(HERE / "raw_all_targets.py"), str(checkpoint), str(calibration),
                             str(tmp / f"{arch}-raw")], tmp / f"{arch}-raw.log")
                steps = json.loads((tmp / f"{arch}-raw" / "steps.json").read_text())
                row |= {"raw_seconds": raw["seconds"], "raw_peak_rss_mb": raw["peak_rss_mb"], "raw_steps": steps}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "seconds_per_step"}), file=sys.stderr)
    out = HERE / "results" / "scaling.json"
    # A run of some --models replaces their rows and keeps the others' (same host, say the rows' dates).
    earlier = json.loads(out.read_text())["rows"] if out.exists() else []
    for row in rows:
        row["date"] = time.strftime("%Y-%m-%d")
    kept = [r for r in earlier if r["model"] not in {row["model"] for row in rows}]
    order = {m: i for i, m in enumerate(("resnet18", "resnet50", "resnet101"))}
    rows = sorted(kept + rows, key=lambda r: order.get(r["model"], len(order)))
    out.write_text(json.dumps({"images": IMAGES, "targets": list(TARGETS), "rows": rows, "host": host()}, indent=2)
                   + "\n")


# Where compress spends its time: cumulative seconds of these functions under cProfile
# (a converter's child process counts in the call that waits for it).
STEPS = {
    "evaluate fp32": "record_input", "calibrate": "calibrate", "ptq (int8 parameters)": "quantize_post_training",
    "onnx export": "export_onnx",
    "openvino convert": "export_openvino", "coreml convert": "export_coreml", "coreml w8a8 calibrate": "quantize_w8a8",
    "tflite convert": "export_tflite", "verify files": "_verify", "evaluate files": "_artifact_row",
}


def _profiled_steps(profile: Path) -> dict[str, float]:
    import pstats

    stats = pstats.Stats(str(profile)).stats  # {(file, line, function): (calls, _, _, tottime, cumtime, callers)}
    cumulative: dict[str, float] = {}
    for (file, _, function), (_, _, _, cumtime, _) in stats.items():
        if "edgeresnet" in file and function in STEPS.values():
            cumulative[function] = cumulative.get(function, 0.0) + cumtime
    return {step: round(cumulative.get(function, 0.0), 1) for step, function in STEPS.items()}


if __name__ == "__main__":
    main()
