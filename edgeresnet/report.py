"""The result of a run: report.json for machines, a table for people."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

REPORT_SCHEMA_VERSION = 1


class ResultRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    target: str  # "pytorch-fp32" for the reference row
    file: str | None
    size_bytes: int
    # None where the file cannot run on this host (Core ML off macOS): `note` says why.
    top1: float | None
    top5: float | None
    delta_top1: float | None  # points against the PyTorch FP32 model on the same images
    agreement: float | None  # percent of top-1 predictions equal to PyTorch FP32's
    latency: dict[str, Any] | None  # runner.timing.Latency as a dict, batch 1
    note: str | None = None


class RunReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: int = REPORT_SCHEMA_VERSION
    model: dict[str, Any]
    data: dict[str, Any]
    calibration: dict[str, Any] | None
    results: list[ResultRow]
    seconds: dict[str, float]  # wall time per stage
    host: dict[str, Any]


def results_table(report: RunReport):
    from rich.table import Table

    table = Table(title=f"{report.model['arch']} on {report.data['samples']} images of {report.data['name']}")
    for column in ("target", "size", "top-1", "delta", "agree", "p50 latency"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in report.results:
        if row.top1 is None:
            table.add_row(row.target, human_size(row.size_bytes), "", "", "", row.note or "not run")
            continue
        delta = "" if row.target.startswith("pytorch") else f"{row.delta_top1:+.2f}"
        table.add_row(
            row.target, human_size(row.size_bytes), f"{row.top1:.2f}%", delta,
            f"{row.agreement:.2f}%", f"{row.latency['p50_ms']:.3f} ms",
        )
    return table


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def bench_table(report):
    """A runner.bench.BenchReport for people: one row per artifact."""
    from rich.table import Table

    data = f"{report.data['samples']} images" if report.data else "no data"
    table = Table(title=f"{report.source} on {report.device} ({report.host['cpu']}, "
                        f"{report.config.threads} threads, batch {report.config.batch}, {data})")
    for column in ("target", "size", "load", "first", "p50", "p99", "img/s", "peak RSS", "+load", "top-1", "delta",
                   "agree"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in report.results:
        if row.status != "ok":
            table.add_row(row.target, human_size(row.size_bytes), f"skipped: {row.note}")
            continue
        accuracy, memory = row.accuracy, row.memory
        table.add_row(
            row.target, human_size(row.size_bytes), f"{row.load_ms:.0f} ms", f"{row.first_inference_ms:.2f} ms",
            f"{row.latency['p50_ms']:.3f} ms", f"{row.latency['p99_ms']:.3f} ms", f"{row.throughput_ips:.0f}",
            f"{memory.peak_rss_mb:.0f} MB", _mb(memory.added_by_load_mb),
            f"{accuracy.top1:.2f}%" if accuracy else "",
            f"{accuracy.delta_top1:+.2f}" if accuracy and accuracy.delta_top1 is not None else "",
            f"{accuracy.agreement:.2f}%" if accuracy and accuracy.agreement is not None else "",
        )
    return table


def _mb(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f} MB"
