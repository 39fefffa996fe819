"""Runs in a process of its own: load one artifact, time it, measure its memory and accuracy.

Why a process per artifact: peak resident memory is a property of a process, and thread
pools, allocator caches and JIT state of one runtime would otherwise colour the next
one's numbers. The parent (runner.bench) prepares the images once, as a .npy file of
uint8 RGB pixels that this process maps read-only.

Usage: python -m edgeresnet.runner.measure JOB.json RESULT.json
JOB: {"artifact", "image_input", "preprocess", "pixels", "labels", "predict", "threads", "device", "batch", "runs",
"warmup"}; with "labels" (a .npy), top-1 predictions and top-5 hits; without, and "predict" true (unlabelled
data), the top-1 predictions alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..data import normalize
from ..errors import EdgeResNetError
from ..evaluate import hits
from ..preprocess import Preprocess
from .memory import peak_rss_mb, rss_mb
from .runtimes import open_artifact
from .timing import measure_latency

CHUNK = 256  # images per accuracy step: memory stays flat however large the data set


def measure(job: dict) -> dict:
    spec = Preprocess(**job["preprocess"])
    image_input, batch = job["image_input"], job["batch"]

    def inputs(pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pixels) if image_input else normalize(pixels, spec)

    pixels = np.load(job["pixels"], mmap_mode="r")  # before the model: its pages are not the model's memory
    first = inputs(np.resize(pixels[:batch], (batch, *pixels.shape[1:])))  # repeats images if fewer than batch
    before = rss_mb()
    start = time.perf_counter()
    runtime = open_artifact(Path(job["artifact"]), job["threads"], job["device"], image_input=image_input, batch=batch)
    load_ms = (time.perf_counter() - start) * 1e3
    loaded = rss_mb()
    raw = runtime.to_raw(first)
    start = time.perf_counter()
    runtime.invoke(raw)
    first_ms = (time.perf_counter() - start) * 1e3
    latency = measure_latency(lambda: runtime.invoke(raw), runs=job["runs"], warmup=job["warmup"])
    ran = rss_mb()

    result = {
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "latency": latency.to_dict(samples=True),
        "throughput_ips": batch * 1e3 / latency.mean_ms,
        "memory": {
            "before_load_mb": before,
            "after_load_mb": loaded,
            "after_run_mb": ran,
            "added_by_load_mb": _diff(loaded, before),
            "added_by_run_mb": _diff(ran, loaded),
        },
        "predictions": None,
        "top5_hits": None,
        "executed_by": getattr(runtime, "executed_by", None),
    }
    if job.get("labels"):
        labels = np.load(job["labels"])
        predictions, top5 = [], 0
        for start in range(0, len(pixels), CHUNK):
            top1, _, in_top5 = hits(runtime(inputs(pixels[start : start + CHUNK])), labels[start : start + CHUNK])
            predictions.append(top1)
            top5 += int(in_top5.sum())
        result["predictions"] = np.concatenate(predictions).tolist()
        result["top5_hits"] = top5
    elif job.get("predict"):  # unlabelled images: what it predicts, for agreement with PyTorch
        predictions = []
        for start in range(0, len(pixels), CHUNK):
            logits = runtime(inputs(pixels[start : start + CHUNK]))
            predictions.append(hits(logits, np.zeros(len(logits), dtype=np.int64))[0])
        result["predictions"] = np.concatenate(predictions).tolist()
    result["memory"]["peak_rss_mb"] = peak_rss_mb()
    return result


def _diff(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def main(job_path: str, result_path: str) -> int:
    try:
        result = measure(json.loads(Path(job_path).read_text()))
    except EdgeResNetError as error:  # the parent shows this line as the command's error
        print(f"error: {error.one_line()}", file=sys.stderr)
        return 2
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
