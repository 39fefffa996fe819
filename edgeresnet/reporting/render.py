"""comparison.md and comparison.html: one table of every run on every device, where each result
was measured, and the per-device notes."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from ..errors import EdgeResNetError
from ..run_report import NO_LABELS, human_size
from .plots import PLOTS, plots
from .sources import Row, Source, display_order

COLUMNS = ("run", "device", "target", "size", "top-1", "delta", "agreement", "p50", "p99", "img/s", "peak RSS")


def _cells(row: Row) -> list[str]:
    def fmt(value, pattern):
        return "" if value is None else pattern.format(value)

    measured = row.labelled or row.p50_ms is None  # a row not run here says nothing of labels
    no_labels = "" if measured else NO_LABELS
    rounded = None if row.delta_top1 is None else round(row.delta_top1, 2) + 0.0  # + 0.0: no "-0.00"
    delta = fmt(rounded, "{:+.2f}") or ("" if row.target.startswith("pytorch") else no_labels)
    return [
        row.run,
        row.device,
        row.target,
        human_size(row.size_bytes),
        fmt(row.top1, "{:.2f}%") or no_labels,
        delta,
        fmt(row.agreement, "{:.2f}%"),
        fmt(row.p50_ms, "{:.3f} ms"),
        fmt(row.p99_ms, "{:.3f} ms"),
        fmt(row.throughput_ips, "{:.0f}"),
        fmt(row.peak_rss_mb, "{:.0f} MB"),
    ]


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in sorted(rows, key=display_order)]
    return "\n".join(lines) + "\n"


def measured_on(sources: list[Source]) -> list[str]:
    """One line per result file (host, date, threads, runs, images), then the files it did not measure."""
    lines = [source.describe() for source in sources]
    lines += [
        f"{source.label}: {target} {status}: {why}" for source in sources for target, status, why in source.unmeasured
    ]
    return lines


def to_html(rows: list[Row], title: str, notes: Sequence[str] = (), sources: Sequence[Source] = ()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row)) + "</tr>"
        for row in sorted(rows, key=display_order)
    )
    listed = "".join(f"<li>{html.escape(line)}</li>" for line in measured_on(list(sources)))
    measured = f"<h2>Measured on</h2><ul>{listed}</ul>" if listed else ""
    images = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in PLOTS)
    if notes:
        images = "<h2>Per device</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>" + images
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(-n+3){text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{measured}<table><tr>{head}</tr>{body}</table>{images}"
        "</body></html>\n"
    )


def write_comparison(
    run_dirs: Sequence[Path], rows: list[Row], out: Path, notes: Sequence[str] = (), sources: Sequence[Source] = ()
) -> list[Path]:
    """Write the tables and plots of `rows` (load_sources(run_dirs)), `notes` (``verdicts``) and where
    each result was measured (``sources``) into `out`."""
    if not rows:
        raise EdgeResNetError(
            "no measured results in " + ", ".join(map(str, run_dirs)),
            "benchmark the runs with `edgeresnet bench` first",
        )
    out.mkdir(parents=True, exist_ok=True)
    title = "edgeresnet: " + ", ".join(Path(d).name for d in run_dirs)
    listed = "".join(f"- {note}\n" for note in notes)
    measured = "".join(f"- {line}\n" for line in measured_on(list(sources)))
    (out / "comparison.md").write_text(
        f"# {title}\n\n"
        + (f"Measured on:\n\n{measured}\n" if measured else "")
        + markdown(rows)
        + (f"\n## Per device\n\n{listed}" if notes else "")
    )
    (out / "comparison.html").write_text(to_html(rows, title, notes, sources))
    return [out / "comparison.md", out / "comparison.html", *plots(rows, out)]
