"""The results `edgeresnet report` compares: each run's bench-<device>.json files (written by
`edgeresnet bench`), or its report.json where a run was never benchmarked (measured on the
exporting host by compress), as rows; and per device, the fastest file within the accuracy budget."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeResNetError


@dataclass(frozen=True)
class Row:
    run: str
    device: str
    target: str
    size_bytes: int
    top1: float | None
    delta_top1: float | None
    agreement: float | None
    p50_ms: float | None
    p99_ms: float | None
    throughput_ips: float | None
    peak_rss_mb: float | None
    samples_ms: tuple[float, ...] = ()
    labelled: bool = True  # False: measured on unlabelled images, so top-1 and delta are "no labels"

    @property
    def label(self) -> str:
        return f"{self.run} / {self.device}"


@dataclass(frozen=True)
class Source:
    """One result file a comparison read: where, when and how its rows were measured, and the
    rows it could not measure (Core ML off macOS, a runtime that failed) with the reason."""

    run: str
    device: str
    created: str | None
    host: dict
    threads: int | None
    runs: int | None
    batch: int | None
    images: str
    unmeasured: tuple[tuple[str, str, str], ...]  # (target, status, why)
    baseline_top1: float | None = None  # PyTorch FP32's top-1 on the same images, which deltas are against

    @property
    def label(self) -> str:
        return f"{self.run} / {self.device}"

    def describe(self) -> str:
        cpu = self.host.get("cpu") or "unknown CPU"
        board = f", {self.host['board']}" if self.host.get("board") else ""
        timing = (
            f"{self.threads} threads, batch {self.batch}, {self.runs} timed runs"
            if self.threads
            else "compress's timing"
        )
        baseline = "" if self.baseline_top1 is None else f" (PyTorch FP32 top-1 {self.baseline_top1:.2f}%)"
        return (
            f"{self.label}: {cpu}{board}; {timing}; {self.images}{baseline}; "
            f"measured {self.created or 'at an unrecorded time'}"
        )


def load_sources(run_dirs: list[Path]) -> tuple[list[Row], list[Source]]:
    """The rows of every run's bench-*.json (or, never benchmarked, its report.json), and what
    each of those files says of how it measured them."""
    rows: list[Row] = []
    sources: list[Source] = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise EdgeResNetError(
                f"{run_dir} is not a run directory", "pass directories written by `edgeresnet compress`"
            )
        benches = sorted(run_dir.glob("bench-*.json"))
        if benches:
            for path in benches:
                report = _read_json(path)
                rows += _bench_rows(run_dir.name, report)
                config, data = report.get("config") or {}, report.get("data") or {}
                sources.append(
                    Source(
                        run_dir.name,
                        report["device"],
                        report.get("created"),
                        report.get("host") or {},
                        config.get("threads"),
                        config.get("runs"),
                        config.get("batch"),
                        f"{data['samples']} images of {Path(data.get('source', '')).name}" if data else "no data",
                        tuple(
                            (r["target"], r["status"], r.get("note") or "")
                            for r in report["results"]
                            if r["status"] != "ok"
                        ),
                        next(
                            (
                                r["accuracy"]["baseline_top1"]
                                for r in report["results"]
                                if (r.get("accuracy") or {}).get("baseline_top1") is not None
                            ),
                            None,
                        ),
                    )
                )
        elif (run_dir / "report.json").is_file():
            report = _read_json(run_dir / "report.json")
            rows += _report_rows(run_dir.name, report)
            data = report.get("data") or {}
            sources.append(
                Source(
                    run_dir.name,
                    "export host",
                    None,
                    report.get("host") or {},
                    None,
                    None,
                    None,
                    f"{data.get('samples')} images of {data.get('name')}",
                    tuple(
                        (r["target"], "not run", r.get("note") or "")
                        for r in report["results"]
                        if not (r.get("latency") or {}).get("p50_ms")
                    ),
                    next((r["top1"] for r in report["results"] if r["target"] == "pytorch-fp32"), None),
                )
            )
        else:
            raise EdgeResNetError(
                f"{run_dir} holds neither bench-*.json nor report.json",
                "run `edgeresnet compress`, then `edgeresnet bench` on it",
            )
    return rows, sources


def verdicts(rows: list[Row], hosts: dict[tuple[str, str], dict], max_drop: float = 1.0) -> list[str]:
    """Per device, the fastest file whose top-1 is within ``max_drop`` points of its FP32 baseline;
    per run and device, each int8 file not faster than its runtime's fp32 file there, and why."""
    from ..runner.host import int8_speed_notes

    lines = []
    for device in sorted({row.device for row in rows}):
        files = [r for r in rows if r.device == device and r.p50_ms is not None and not r.target.startswith("pytorch")]
        within = [r for r in files if r.delta_top1 is not None and r.delta_top1 >= -max_drop]
        if within:
            best = min(within, key=lambda r: r.p50_ms or 0.0)  # every file here has a p50
            lines.append(
                f"{device}: fastest within {max_drop:g} point(s) of FP32: {best.target} of {best.run} "
                f"({best.p50_ms:.3f} ms p50, {best.delta_top1:+.2f} top-1)"
            )
        elif any(r.delta_top1 is not None for r in files):
            lines.append(f"{device}: every file lost more than {max_drop:g} point(s) of top-1 against FP32")
        elif files:
            lines.append(
                f"{device}: no file has a top-1 delta against FP32 here (unlabelled data, or images other "
                "than its run's): no accuracy budget to judge"
            )
    for (run, device), host in sorted(hosts.items()):
        p50 = {r.target: r.p50_ms for r in rows if r.run == run and r.device == device and r.p50_ms is not None}
        lines += [f"{run} / {device}: {note}" for note in int8_speed_notes(p50, host)]
    return lines


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgeResNetError(f"{path} is not valid JSON ({exc})", "benchmark the run again") from None


def _bench_rows(run: str, report: dict) -> list[Row]:
    rows = []
    labelled = (report.get("data") or {}).get("labelled", True)
    for result in report["results"]:
        if result["status"] != "ok":
            continue
        accuracy, latency = result.get("accuracy") or {}, result["latency"]
        rows.append(
            Row(
                run,
                report["device"],
                result["target"],
                result["size_bytes"],
                accuracy.get("top1"),
                accuracy.get("delta_top1"),
                accuracy.get("agreement"),
                latency["p50_ms"],
                latency["p99_ms"],
                result["throughput_ips"],
                result["memory"]["peak_rss_mb"],
                tuple(latency.get("samples_ms") or ()),
                labelled,
            )
        )
    return rows


def _report_rows(run: str, report: dict) -> list[Row]:
    rows = []
    labelled = report.get("data", {}).get("labelled", True)
    for result in report["results"]:
        latency = result.get("latency") or {}
        rows.append(
            Row(
                run,
                "export host",
                result["target"],
                result["size_bytes"],
                result["top1"],
                result["delta_top1"],
                result["agreement"],
                latency.get("p50_ms"),
                latency.get("p99_ms"),
                1e3 / latency["mean_ms"] if latency.get("mean_ms") else None,
                None,
                tuple(latency.get("samples_ms") or ()),
                labelled,
            )
        )
    return rows


def display_order(row: Row):
    return row.target, row.run, row.device
