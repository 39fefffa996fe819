"""PyTorch FP32 eager, the reference row: top-1 and one-image latency at 1 and 2 threads.

    .venv/bin/python benchmarks/eager_fp32.py MODEL.pt PIXELS.npy LABELS.npy OUT.json [RUNS]

Run by targets_vs_raw.py in a process of its own (its peak memory is the model's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

import edgeresnet
from edgeresnet.data import normalize
from edgeresnet.runner.timing import measure_latency


def main(checkpoint: str, pixels: str, labels: str, out: str, runs: str = "300") -> None:
    model = edgeresnet.load_model(checkpoint)
    module = model.module.eval()
    images = np.load(pixels)
    row = {"file": Path(checkpoint).name, "size_bytes": Path(checkpoint).stat().st_size}
    with torch.inference_mode():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            one = torch.from_numpy(normalize(images[:1], model.preprocess))
            latency = measure_latency(lambda: module(one), runs=int(runs), warmup=30)
            row[f"p50_ms_{threads}t"] = round(latency.p50_ms, 3)
            row[f"p99_ms_{threads}t"] = round(latency.p99_ms, 3)
        predictions = np.concatenate([module(torch.from_numpy(normalize(images[i : i + 500], model.preprocess)))
                                      .argmax(1).numpy() for i in range(0, len(images), 500)])
    row["top1"] = round(100 * float((predictions == np.load(labels)).mean()), 2)
    row["agreement_fp32"] = 100.0
    row["predictions"] = predictions.tolist()
    Path(out).write_text(json.dumps(row))


if __name__ == "__main__":
    main(*sys.argv[1:])
