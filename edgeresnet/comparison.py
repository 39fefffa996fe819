"""edgeresnet report: several runs, and the devices they were benchmarked on, side by side.

Reads each run directory's bench-<device>.json files (written by `edgeresnet bench`); a
run never benchmarked contributes its report.json (measured on the exporting host by
compress). Writes comparison.md, comparison.html and three PNG plots.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import EdgeResNetError
from .report import NO_LABELS, human_size

PLOTS = ("latency_vs_accuracy.png", "size_per_target.png", "latency_distribution.png")


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


def load_runs(run_dirs: list[Path]) -> tuple[list[Row], dict[tuple[str, str], dict]]:
    """The rows of every run's bench-*.json (or, never benchmarked, its report.json), and the
    host block of each (run, device) they were measured on: what a device's verdict needs."""
    rows, sources = load_sources(run_dirs)
    return rows, {(source.run, source.device): source.host for source in sources}


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
    from .runner.host import int8_speed_notes

    lines = []
    for device in sorted({row.device for row in rows}):
        files = [r for r in rows if r.device == device and r.p50_ms is not None and not r.target.startswith("pytorch")]
        within = [r for r in files if r.delta_top1 is not None and r.delta_top1 >= -max_drop]
        if within:
            best = min(within, key=lambda r: r.p50_ms)
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
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in sorted(rows, key=_order)]
    return "\n".join(lines) + "\n"


def measured_on(sources: list[Source]) -> list[str]:
    """One line per result file (host, date, threads, runs, images), then the files it did not measure."""
    lines = [source.describe() for source in sources]
    lines += [
        f"{source.label}: {target} {status}: {why}" for source in sources for target, status, why in source.unmeasured
    ]
    return lines


def to_html(rows: list[Row], title: str, notes: list[str] = (), sources: list[Source] = ()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row)) + "</tr>"
        for row in sorted(rows, key=_order)
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


def _order(row: Row):
    return row.target, row.run, row.device


def plots(rows: list[Row], out: Path) -> list[Path]:
    from .errors import require

    require(("matplotlib",), "edgeresnet report's plots", "report")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    # One colour per target, one marker per run and device: both stay readable with many of each.
    targets = sorted({row.target for row in rows})
    palette = [*plt.cm.tab10.colors, *plt.cm.Dark2.colors]  # distinct hues first; tab20's pairs look alike
    colours = {target: palette[i % len(palette)] for i, target in enumerate(targets)}
    labels = sorted({row.label for row in rows})
    markers = {label: "osD^vP*Xh<>"[i % 11] for i, label in enumerate(labels)}
    written = []

    figure, axes = plt.subplots(figsize=(9, 5.5))
    points = [row for row in rows if row.p50_ms is not None and row.top1 is not None]
    for row in points:
        axes.scatter(row.p50_ms, row.top1, color=colours[row.target], marker=markers[row.label], s=40)
    spread = max(r.p50_ms for r in points) / min(r.p50_ms for r in points) if points else 1.0
    if spread > 10:  # PyTorch eager and int8 files an order of magnitude apart: log scale, plain labels
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axes.xaxis.set_minor_formatter(NullFormatter())  # the minor labels overlapped the major ones
    if not points:  # every run measured on unlabelled images: latency without accuracy
        axes.text(0.5, 0.5, "no labels: no accuracy to plot", ha="center", va="center", transform=axes.transAxes)
    axes.set(
        xlabel=f"p50 latency, batch 1 (ms{', log scale' if spread > 10 else ''})",
        ylabel="top-1 (%)",
        title="Latency against accuracy",
    )
    handles = [
        axes.scatter([], [], color=colours[t], marker="o", label=t)
        for t in targets
        if any(r.target == t for r in points)
    ]
    handles += [axes.scatter([], [], color="grey", marker=markers[label], label=label) for label in labels]
    axes.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    written.append(_save(figure, out / PLOTS[0]))

    bars = size_bars(rows)
    runs = sorted({run for _, _, run in bars})
    run_colours = {run: plt.cm.tab10(i % 10) for i, run in enumerate(runs)}
    figure, axes = plt.subplots(figsize=(9, max(3, 0.3 * len(bars) + 1)))
    axes.barh([name for name, _, _ in bars], [kb for _, kb, _ in bars], color=[run_colours[run] for *_, run in bars])
    axes.invert_yaxis()
    axes.set(xlabel="size (KB)", title="File size per target and run")
    written.append(_save(figure, out / PLOTS[1]))

    timed = [row for row in rows if row.samples_ms]
    figure, axes = plt.subplots(figsize=(9, max(3, 0.35 * len(timed) + 1)))
    if timed:
        boxes = axes.boxplot([row.samples_ms for row in timed], vert=False, showfliers=False, patch_artist=True)
        for box, row in zip(boxes["boxes"], timed):
            box.set_facecolor(colours[row.target])
        axes.set_yticks(range(1, len(timed) + 1), [f"{row.target} ({row.label})" for row in timed], fontsize=7)
    axes.set(xlabel="latency per inference (ms)", title="Latency distribution (whiskers: 1.5 IQR)")
    written.append(_save(figure, out / PLOTS[2]))
    return written


def size_bars(rows: list[Row]) -> list[tuple[str, float, str]]:
    """(bar name, KB, run) of every run's file of every target: a pruned run's files are smaller,
    so one run's sizes do not stand for another's."""
    sized = sorted(
        {(row.run, row.target): row.size_bytes for row in rows if not row.target.startswith("pytorch")}.items(),
        key=lambda item: (item[0][1], item[0][0]),
    )
    return [(f"{target} ({run})", size / 1024, run) for (run, target), size in sized]


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def write_comparison(
    run_dirs: list[Path], rows: list[Row], out: Path, notes: list[str] = (), sources: list[Source] = ()
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
