"""The three plots of `edgeresnet report`: latency against accuracy, size per target, and the
latency distribution, one colour per target and one marker per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

from .sources import Row

PLOTS = ("latency_vs_accuracy.png", "size_per_target.png", "latency_distribution.png")


def plots(rows: list[Row], out: Path) -> list[Path]:
    from ..errors import require

    require(("matplotlib",), "edgeresnet report's plots", "report")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    # One colour per target, one marker per run and device: both stay readable with many of each.
    targets = sorted({row.target for row in rows})
    # Distinct hues first; tab20's pairs look alike.
    palette = [
        *cast(Sequence, cast(ListedColormap, plt.cm.tab10).colors),
        *cast(Sequence, cast(ListedColormap, plt.cm.Dark2).colors),
    ]
    colours = {target: palette[i % len(palette)] for i, target in enumerate(targets)}
    labels = sorted({row.label for row in rows})
    markers = {label: "osD^vP*Xh<>"[i % 11] for i, label in enumerate(labels)}
    written = []

    figure, axes = plt.subplots(figsize=(9, 5.5))
    points = [row for row in rows if row.p50_ms is not None and row.top1 is not None]
    latencies = [row.p50_ms for row in points if row.p50_ms is not None]
    for row in points:
        axes.scatter(row.p50_ms or 0.0, row.top1 or 0.0, color=colours[row.target], marker=markers[row.label], s=40)
    spread = max(latencies) / min(latencies) if latencies else 1.0
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
