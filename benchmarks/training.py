"""Table 4: how busy the loader keeps training, and what torchrun's processes do on this machine.

1. Loader: one distillation epoch (the distill stage's objective, teacher = the model
   itself) with the batches prepared in the loop (prefetch 0) or on a background thread
   (prefetch 2), for the fine-tuned ResNet-20 on CIFAR (decoded once, augmented per batch)
   and a torchvision-layout resnet18 at 224x224 (JPEGs decoded and cropped per batch by
   `workers` threads). "busy" is the share of the epoch the loop did not wait for a batch
   (EpochRecord.data_wait_seconds).
2. Processes: the same ResNet-20 epoch on one process (2 threads) and under torchrun on two
   (1 thread each, gloo), the global batch unchanged.

    .venv/bin/python benchmarks/training.py [--images 5120]

Writes benchmarks/results/training.json; benchmarks/tables.py renders it. About 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from measuring import HERE, host

SHARED = HERE.parent.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5120, help="CIFAR training images per epoch")
    parser.add_argument("--large-images", type=int, default=256, help="images per resnet18 epoch at 224x224")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # one epoch in this process (under torchrun), JSON here
    args = parser.parse_args()
    if args.job:
        json.dump(epoch(json.loads(args.job)), sys.stdout)
        return
    rows = []
    for prefetch in (0, 2):
        rows.append(_child({"model": "resnet20", "images": args.images, "prefetch": prefetch, "threads": 2}))
    for workers, prefetch in ((1, 0), (1, 2), (2, 2)):
        rows.append(_child({"model": "resnet18", "images": args.large_images, "prefetch": prefetch,
                            "workers": workers, "threads": 2, "batch_size": 32}))
    rows.append(_child({"model": "resnet20", "images": args.images, "prefetch": 0, "threads": 1}, processes=2))
    out = HERE / "results" / "training.json"
    out.write_text(json.dumps({"what": "one distillation epoch: loader busy share, and processes under torchrun",
                               "rows": rows, "host": host()}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def _child(job: dict, processes: int = 1) -> dict:
    """``job`` in a fresh process (or ``processes`` under torchrun): its own threads, its own memory."""
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]))
    done = subprocess.run([*launcher, str(Path(__file__)), "--job", json.dumps(job)], env=env, check=True,
                          stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr)
    return result


def epoch(job: dict) -> dict:
    import torch

    import edgeresnet
    from edgeresnet import distributed
    from edgeresnet.data import open_dataset
    from edgeresnet.stages.distill import DistillConfig, distill
    from edgeresnet.training.config import Execution

    torch.set_num_threads(job["threads"])
    data = SHARED / "datasets" / "cifar10-jpeg" / "train.zip"
    if job["model"] == "resnet20":
        model = edgeresnet.load_model(SHARED / "models" / "cifar" / "resnet20_cifar10jpeg.pt")
    else:  # ImageNet layout and preprocessing: the 32x32 JPEGs are upscaled per batch, as a user's photos would be
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            path = Path(tmp) / "resnet18.pt"
            torch.save(edgeresnet.models.create("resnet18", num_classes=10).state_dict(), path)
            model = edgeresnet.load_model(path)
    config = DistillConfig(epochs=1, limit=job["images"], batch_size=job.get("batch_size", 128))
    execution = Execution(prefetch=job["prefetch"], workers=job.get("workers"))
    with distributed.process_group() as world:
        _, history = distill(model, model, config, open_dataset(data), execution=execution)
    record = history[0]
    if not world.is_main:
        sys.exit(0)
    return {**job, "processes": world.size, "seconds": round(record.seconds, 2),
            "data_wait_seconds": record.data_wait_seconds,
            "busy_percent": round(100 * (1 - record.data_wait_seconds / record.seconds), 1),
            "images_per_second": round(job["images"] // config.batch_size * config.batch_size / record.seconds, 1)}


if __name__ == "__main__":
    main()
