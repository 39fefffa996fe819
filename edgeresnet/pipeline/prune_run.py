"""What `edgeresnet prune` writes and prints: the pruned model, its plan, and what it cost."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..data import ImageDataset
from ..errors import ArchitectureError
from ..evaluate import evaluate
from ..models.model import Model
from ..models.summary import stage_widths
from ..rundir import staged_directory
from ..saving import save

REPORT_NAME = "prune-report.json"


def write_pruned(
    model: Model,
    config,
    data: ImageDataset,
    train: ImageDataset,
    out: Path,
    *,
    overwrite: bool = False,
    threads: int = 2,
    log=lambda message: None,
) -> dict:
    """Prune ``model`` (importance and batch norms from ``train``), measure top-1 before and after on
    ``data``, and write model.safetensors, channel-plan.json, prune-report.json and the resolved config."""
    from ..stages.prune import prune

    with staged_directory(Path(out), overwrite) as run:
        start = time.perf_counter()
        pruned = prune(model, config, data=train)
        seconds = round(time.perf_counter() - start, 2)
        log(f"pruned in {seconds:.1f} s: {pruned.plan.info['macs_factor']:.2f}x fewer MACs")
        before = evaluate(model.predictor(threads), data, model.preprocess, progress="Before")
        after = evaluate(pruned.predictor(threads), data, pruned.preprocess, progress="After")
        save(pruned, run)
        report = {
            "model": model.source,
            "arch": model.arch,
            "data": data.source,
            "samples": after.n,
            "config": config.model_dump(mode="json"),
            "seconds": seconds,
            "top1_before": before.top1,
            "top1_after": after.top1,
            "stage_widths_before": _stage_widths(model.module),
            "stage_widths_after": _stage_widths(pruned.module),
            **{k: v for k, v in pruned.plan.info.items()},
        }
        (run / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _stage_widths(module) -> list[int] | None:
    """Output channels of each stage, for a network with layer1, layer2, ... stages (None otherwise)."""
    try:
        return list(stage_widths(module))
    except (ArchitectureError, AttributeError, ValueError):
        return None


def prune_table(report: dict):
    from rich.table import Table

    table = Table(title=f"{report['arch']} pruned ({report['importance']}, {report['scope']})")
    for column in ("", "before", "after", "change"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row(
        "top-1 %",
        f"{report['top1_before']:.2f}",
        f"{report['top1_after']:.2f}",
        f"{report['top1_after'] - report['top1_before']:+.2f}",
    )
    table.add_row(
        "MACs",
        f"{report['macs_before'] / 1e6:,.1f} M",
        f"{report['macs_after'] / 1e6:,.1f} M",
        f"{report['macs_factor']:.2f}x fewer",
    )
    table.add_row(
        "parameters",
        f"{report['params_before']:,}",
        f"{report['params_after']:,}",
        f"{report['params_before'] / report['params_after']:.2f}x fewer",
    )
    if report["stage_widths_before"] and report["stage_widths_after"]:
        table.add_row(
            "stage widths",
            " / ".join(map(str, report["stage_widths_before"])),
            " / ".join(map(str, report["stage_widths_after"])),
            "",
        )
    if report["removed_blocks"]:
        table.add_row("blocks removed", "", str(len(report["removed_blocks"])), "")
    for space, op in report.get("frozen", {}).items():  # kept whole: an op the analysis cannot follow
        table.add_row(f"kept whole: {space}", "", "", f"by {op}")
    return table
