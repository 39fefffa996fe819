"""Latency of one inference, as statistics over timed runs after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Latency:
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    samples_ms: tuple[float, ...] = field(default=(), repr=False)  # every timed run, in order

    def to_dict(self, samples: bool = False) -> dict:
        values = asdict(self)
        values["samples_ms"] = list(self.samples_ms) if samples else None
        return values


def measure_latency(run_once: Callable[[], object], *, runs: int = 100, warmup: int = 10) -> Latency:
    for _ in range(warmup):
        run_once()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        run_once()
        times[i] = time.perf_counter() - start
    ms = times * 1e3
    return Latency(
        runs=runs,
        warmup=warmup,
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std()),
        min_ms=float(ms.min()),
        samples_ms=tuple(round(float(t), 5) for t in ms),
    )
