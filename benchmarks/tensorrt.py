"""Table "tensorrt": fp16 and int8 TensorRT engines of a CIFAR ResNet-56 and a ResNet-50, built and measured.

Needs an NVIDIA GPU with TensorRT's Python package (a Jetson, or any CUDA machine with
`pip install tensorrt`); elsewhere it writes nothing and says why. As a user would:

    edgeresnet compress MODEL --target tensorrt-fp16,tensorrt-int8,onnx --data test.zip --train-data train.zip
    edgeresnet bench RUN --data test.zip

for the fine-tuned ResNet-56 of ../shared (10,000 test images; goal: int8 top-1 within 0.5
points of FP32) and a torchvision-layout ResNet-50 (random weights seeded 0, 10 classes,
224x224: built and timed; its accuracy means nothing). The bench rows hold TensorRT's
latency, memory and agreement with PyTorch; the first bench of a file includes the engine
build in its load time, a second one reads the cached engine (both are recorded).

    .venv/bin/python benchmarks/tensorrt.py [--models resnet56,resnet50]

Writes benchmarks/results/tensorrt.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from measuring import BIN, HERE, host, timed
from ptq_fidelity import checkpoint

GOAL_POINTS = 0.5
TARGETS = "tensorrt-fp16,tensorrt-int8,onnx"


def resnet50(directory: Path) -> Path:
    """A torchvision-layout ResNet-50 checkpoint (random weights, seed 0, 10 classes)."""
    import torch

    import edgeresnet

    torch.manual_seed(0)
    path = directory / "resnet50.pt"
    torch.save(edgeresnet.models.create("resnet50", num_classes=10).state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default="resnet56,resnet50")
    args = parser.parse_args()
    from edgeresnet.runner.tensorrt import unavailable_reason

    if (why := unavailable_reason()) is not None:
        raise SystemExit(f"not measured: {why}")
    data = args.shared / "datasets" / "cifar10-jpeg"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            run = Path(tmp) / model
            source = resnet50(Path(tmp)) if model == "resnet50" else checkpoint(args.shared, model)
            extra = ["--arch", "resnet50", "--input-size", "224", "--limit", "1000"] if model == "resnet50" else []
            compress = timed([str(BIN / "edgeresnet"), "compress", str(source), "--target", TARGETS,
                              "--data", str(data / "test.zip"), "--train-data", str(data / "train.zip"),
                              "--out", str(run), *extra], Path(tmp) / f"{model}-compress.log")
            benches = []
            for attempt in ("engine built", "engine cached"):
                start = time.perf_counter()
                timed([str(BIN / "edgeresnet"), "bench", str(run), "--json-out", str(run / f"bench-{len(benches)}.json")],
                      Path(tmp) / f"{model}-bench.log")
                report = json.loads((run / f"bench-{len(benches)}.json").read_text())
                benches.append({"attempt": attempt, "seconds": round(time.perf_counter() - start, 1),
                                "host": report["host"], "results": report["results"]})
            measured = {row["target"]: row for row in benches[-1]["results"]}
            fp32 = json.loads((run / "report.json").read_text())["results"][0]["top1"]
            int8 = (measured["tensorrt-int8"].get("accuracy") or {}).get("top1")
            rows.append({"model": model, "compress": compress, "pytorch_fp32_top1": fp32, "benches": benches,
                         "int8_loss_points": None if int8 is None else round(fp32 - int8, 3),
                         "meets_goal": None if model == "resnet50" or int8 is None else fp32 - int8 <= GOAL_POINTS})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "benches"}), flush=True)
    out = HERE / "results" / "tensorrt.json"
    out.write_text(json.dumps({"host": host(), "goal_points": GOAL_POINTS, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
