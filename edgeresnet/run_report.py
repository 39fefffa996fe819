"""The result of a run: report.json for machines, a table for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

REPORT_SCHEMA_VERSION = 1
NO_LABELS = "no labels"  # what a table shows for accuracy measured on unlabelled images


class ResultRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    target: str  # "pytorch-fp32" for the reference row
    file: str | None
    size_bytes: int
    # None where the file cannot run on this host (Core ML off macOS): `note` says why; and on
    # unlabelled data (report.data["labelled"] false), where agreement and latency still are measured.
    top1: float | None
    top5: float | None
    delta_top1: float | None  # points against the PyTorch FP32 model on the same images
    agreement: float | None  # percent of top-1 predictions equal to PyTorch FP32's
    latency: dict[str, Any] | None  # runner.timing.Latency as a dict, batch 1
    note: str | None = None
    source: str | None = None  # the stage whose model the file was exported from
    source_agreement: float | None = None  # percent of top-1 predictions equal to that model's


class StageRecord(BaseModel):
    """One stage of a compress run, measured on the evaluation data (a QAT model simulated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    stage: str  # "input", "prune", "distill", "qat-tflite", ...
    top1: float | None  # None on unlabelled evaluation data
    top5: float | None
    macs: int
    params: int
    size_bytes: int  # float32 weights
    seconds: float
    epochs: list[dict[str, Any]] = []  # per training epoch: loss, train top-1, learning rate, seconds


class RunReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: int = REPORT_SCHEMA_VERSION
    model: dict[str, Any]
    data: dict[str, Any]
    calibration: dict[str, Any] | None
    results: list[ResultRow]
    seconds: dict[str, float]  # wall time per stage
    host: dict[str, Any]
    recipe: dict[str, Any] | None = None  # the resolved recipe, when one ran
    stages: list[StageRecord] = []
    max_accuracy_drop: float | None = None  # the guard the run was held to (None: none)
    failures: list[str] = []  # targets that lost more top-1 than that: the run failed
    # Where the run was written (set by edgeresnet.compress; not part of report.json, which lies in it).
    _directory: Path | None = PrivateAttr(default=None)

    @property
    def directory(self) -> Path | None:
        return self._directory


def results_table(report: RunReport):
    from rich.table import Table

    labelled = report.data.get("labelled", True)
    kind = "" if labelled else "unlabelled "
    table = Table(title=f"{report.model['arch']} on {report.data['samples']} {kind}images of {report.data['name']}")
    # With stages, each file also agrees (or not) with the model it was exported from.
    staged = any(row.source not in (None, "input") for row in report.results)
    columns = ("target", "size", "top-1", "delta", "agree") + (("from", "agree w/ it") if staged else ())
    for column in columns + ("p50 latency",):
        table.add_column(column, justify="left" if column in ("target", "from") else "right")
    for row in report.results:
        source = (row.source or "", f"{row.source_agreement:.2f}%" if row.source_agreement is not None else "")
        if row.agreement is None:  # not run on this host
            table.add_row(
                row.target, human_size(row.size_bytes), "", "", "", *(source if staged else ()), row.note or "not run"
            )
            continue
        if row.top1 is None:
            top1, delta = NO_LABELS, "" if row.target.startswith("pytorch") else NO_LABELS
        else:
            top1, delta = f"{row.top1:.2f}%", "" if row.target.startswith("pytorch") else f"{row.delta_top1:+.2f}"
        table.add_row(
            row.target,
            human_size(row.size_bytes),
            top1,
            delta,
            f"{row.agreement:.2f}%",
            *(source if staged else ()),
            "see note" if row.latency is None else f"{row.latency['p50_ms']:.3f} ms",
        )
    # Rows measured only in part (a TensorRT file where no GPU is) say why under the table.
    notes = [f"{row.target}: {row.note}" for row in report.results if row.note and row.agreement is not None]
    if any(row.target.startswith("pytorch") and row.latency for row in report.results):
        # Measured the same way, but eager PyTorch's OpenMP threads wait on each other whenever another
        # process holds a core (seen: 2.5 ms idle, 50-400 ms beside a busy process): not a runtime to ship.
        notes.append(
            "pytorch-fp32 latency: eager PyTorch in this process, for reference; compare the files with each other"
        )
    if notes:
        table.caption = "\n".join(notes)
    return table


def stages_table(records: list[StageRecord]):
    """Accuracy, MACs and size after each stage, for people."""
    from rich.table import Table

    table = Table(title="stages")
    for column in ("stage", "top-1", "delta", "MACs", "params", "size", "time"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    first = records[0]
    for record in records:
        if record.top1 is None:
            top1, delta = NO_LABELS, "" if record is first else NO_LABELS
        else:
            top1 = f"{record.top1:.2f}%"
            delta = "" if record is first or first.top1 is None else f"{record.top1 - first.top1:+.2f}"
        table.add_row(
            record.stage,
            top1,
            delta,
            f"{record.macs / 1e6:.1f} M",
            f"{record.params / 1e3:.0f} k",
            human_size(record.size_bytes),
            f"{record.seconds:.0f} s",
        )
    return table


def plot_stages(records: list[StageRecord], rows: list[ResultRow], path) -> bool:
    """Top-1 after each stage and of each exported file, as a PNG; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    if records[0].top1 is None:  # unlabelled data: no accuracy to plot
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [row for row in rows if row.top1 is not None and row.file is not None]
    names = [r.stage for r in records] + [row.target for row in measured]
    # Every record has a top-1 when the input's has (labelled data), and measured rows were chosen for one.
    values = [r.top1 or 0.0 for r in records] + [row.top1 or 0.0 for row in measured]
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(names)), 4))
    colours = ["tab:blue"] * len(records) + ["tab:orange"] * len(measured)
    bars = axis.bar(range(len(names)), values, color=colours)
    axis.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
    axis.axhline(records[0].top1, color="grey", linestyle="--", linewidth=1, label="input FP32")
    # Bars start at 0: a cut axis made a 1-point loss look like half the bar; the labels give the numbers.
    axis.set_ylim(0, min(105, max(values) + 8))
    axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axis.set_ylabel("top-1 (%)")
    axis.set_title("accuracy per stage (blue) and per exported file (orange)")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def bench_table(report):
    """A runner.bench.BenchReport for people: one row per artifact."""
    from rich.table import Table

    data = (
        f"{report.data['samples']} {'' if report.data.get('labelled', True) else 'unlabelled '}images"
        if report.data
        else "no data"
    )
    from .runner.host import int8_speed_notes

    host = report.host
    isa = ", ".join(host.get("isa") or []) or "not recorded"
    p50 = {row.target: row.latency["p50_ms"] for row in report.results if row.status == "ok" and row.latency}
    table = Table(
        title=f"{report.source} on {report.device} ({host['cpu']}"
        f"{', ' + host['board'] if host.get('board') else ''}, {report.config.threads} threads, "
        f"batch {report.config.batch}, {data})",
        caption="\n".join([f"CPU features for int8: {isa}", *int8_speed_notes(p50, host)]),
        caption_justify="left",
    )
    # Nine columns, fit for 100: first inference, throughput and memory added by loading are in the JSON.
    width = max([len("target"), *(len(row.target) for row in report.results)])
    table.add_column("target", no_wrap=True, min_width=width)
    for column in ("size", "load", "p50 ms", "p99 ms", "peak RSS", "top-1", "delta", "agree"):
        table.add_column(column, justify="right")
    unmeasured = []
    for row in report.results:
        if row.status != "ok":  # why, under the table: a reason does not fit a column
            table.add_row(row.target, human_size(row.size_bytes), row.status)
            unmeasured.append(f"{row.target} {row.status}: {row.note}")
            continue
        accuracy, memory = row.accuracy, row.memory
        table.add_row(
            row.target,
            human_size(row.size_bytes),
            f"{row.load_ms:.0f} ms",
            f"{row.latency['p50_ms']:.3f}",
            f"{row.latency['p99_ms']:.3f}",
            f"{memory.peak_rss_mb:.0f} MB",
            (f"{accuracy.top1:.2f}%" if accuracy.top1 is not None else NO_LABELS) if accuracy else "",
            (
                f"{accuracy.delta_top1:+.2f}"
                if accuracy.delta_top1 is not None
                else NO_LABELS
                if accuracy.top1 is None
                else ""
            )
            if accuracy
            else "",
            f"{accuracy.agreement:.2f}%" if accuracy and accuracy.agreement is not None else "",
        )
        if row.note:
            unmeasured.append(f"{row.target}: {row.note}")
    table.caption = "\n".join([*unmeasured, table.caption])
    return table


def _mb(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f} MB"
