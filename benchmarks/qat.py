"""Quantization-aware training against post-training quantization, on the 10,000 test images.

Runs the compress pipeline twice on the same model and data: the `ptq-int8` recipe
(calibration only) and a QAT recipe (`qat-int8` by default), each to tflite-int8 and
openvino-int8, and records per target the file's top-1, its delta to PyTorch FP32, its
agreement with FP32 and with the model it was exported from (for QAT, the simulator it
was trained as), its p50 latency, and the wall time of every stage.

    .venv/bin/python benchmarks/qat.py [--model resnet20] [--recipe qat-int8] [-o qat.epochs=3 ...]

Writes benchmarks/results/qat-<model>-<recipe>.json. ResNet-20 with qat-int8 took 40 minutes
on 2 cores (two QAT runs of 3 epochs on 50,000 images; the first epoch beside the test suite);
ResNet-56 with prune-distill-qat-int8 is sized for under an hour.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ["tflite-int8", "openvino-int8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--model", default="resnet20", help="resnet20 or resnet56 (the fine-tuned baselines)")
    parser.add_argument("--recipe", default="qat-int8")
    parser.add_argument("-o", dest="overrides", action="append", default=[], help="recipe override, repeatable")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--limit", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--skip-ptq", action="store_true")
    args = parser.parse_args()

    import edgeresnet
    from edgeresnet.data import open_dataset
    from edgeresnet.export import parse_targets
    from edgeresnet.pipeline.api import compress
    from edgeresnet.recipes import load_recipe

    data = args.shared / "datasets" / "cifar10-jpeg"
    test = open_dataset(data / "test.zip").subset(args.limit, seed=0)
    train = open_dataset(data / "train.zip")
    model = edgeresnet.load_model(args.shared / "models" / "cifar" / f"{args.model}_cifar10jpeg.pt",
                                  labels=test.classes)
    targets = parse_targets([args.targets])
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe_name, overrides in ([] if args.skip_ptq else [("ptq-int8", [])]) + [(args.recipe, args.overrides)]:
            recipe = load_recipe(recipe_name, overrides)
            start = time.perf_counter()
            report = compress(model, test, targets, Path(tmp) / recipe_name, recipe=recipe, train_data=train,
                              log=lambda message: print(message, file=sys.stderr, flush=True))
            runs[recipe_name] = {
                "overrides": overrides,
                "minutes": round((time.perf_counter() - start) / 60, 1),
                "seconds_per_stage": report.seconds,
                "stages": [record.model_dump(exclude={"epochs"}) | {"epochs": len(record.epochs)}
                           for record in report.stages],
                "results": [_row(row) for row in report.results],
                "recipe": report.recipe,
            }
    result = {
        "what": f"{args.model} (fine-tuned on train.zip): {args.recipe} against ptq-int8, top-1 on "
                f"{len(test)} test images",
        "model": args.model, "test_images": len(test), "runs": runs, "host": report.host,
    }
    only = "" if args.targets == ",".join(TARGETS) else "-" + args.targets.replace(",", "-")
    out = HERE / "results" / f"qat-{args.model}-{args.recipe}{only}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({name: [(r["target"], r["top1"], r["source_agreement"]) for r in run["results"]]
                      for name, run in runs.items()}, indent=1))


def _row(row) -> dict:
    return {
        "target": row.target, "top1": row.top1, "delta_top1": row.delta_top1, "agreement_fp32": row.agreement,
        "source": row.source, "source_agreement": row.source_agreement,
        "p50_ms": row.latency["p50_ms"] if row.latency else None, "size_bytes": row.size_bytes,
    }


if __name__ == "__main__":
    main()
