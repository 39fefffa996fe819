"""`edgeresnet inspect`: what a model is, what it costs, and which channels are tied."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from .models.detect import spec_of_model
from .models.model import Model
from .models.spec import describe_layout, structure_of
from .models.summary import count_macs, count_params, stage_widths
from .pruning.groups import frozen_spaces, residual_groups


def inspect_model(model: Model | str | Path | nn.Module) -> dict[str, Any]:
    """What `edgeresnet inspect` shows: a model's architecture, size, costs and tied channels.

    Args:
        model: a Model, a checkpoint path or an nn.Module (read as ``load_model`` reads it).

    Returns a JSON-ready dict: arch, layout, classes and labels, input size and preprocessing,
    params, MACs, stage widths, the channels residual additions tie together
    (``residual_groups``), what pruning leaves whole (``frozen``), and the channel plan of a
    pruned model (``pruned``).

    Example::

        summary = edgeresnet.inspect_model("resnet20.th")
        print(summary["arch"], summary["params"], summary["macs"])
    """
    from .loading import as_model

    model = as_model(model)
    size = model.preprocess.input_size
    groups = residual_groups(model.module, model.input_shape)
    spec = spec_of_model(model.arch, model.options)
    return {
        "arch": model.arch,
        "layout": model.layout,
        "description": describe_layout(spec.layout) if spec is not None and spec.layout is not None else None,
        "structure": structure_of(spec) if spec is not None else None,
        "in_chans": model.in_chans,
        "labels": list(model.labels) if model.labels else None,
        "family": model.family,
        "options": model.options,
        "source": model.source,
        "num_classes": model.num_classes,
        "input_size": size,
        "params": count_params(model.module),
        "macs": count_macs(model.module, size),
        "stage_widths": list(stage_widths(model.module)),
        "residual_groups": [dataclasses.asdict(group) for group in groups],
        "frozen": frozen_spaces(model.module, model.input_shape),  # what pruning leaves whole, and why
        "preprocessing": model.preprocess.model_dump(),
        "pruned": model.plan.summary if model.plan is not None else None,
    }


def summary_table(summary: dict[str, Any]):
    from rich.console import Group
    from rich.table import Table

    facts = Table(show_header=False, box=None)
    pruned = f" pruned ({summary['pruned']})" if summary.get("pruned") else ""
    architecture = summary["description"] or summary["arch"] + _options_text(summary["options"])
    facts.add_row("architecture", architecture + pruned)
    facts.add_row("layout", f"{summary['layout']} weights, {summary['in_chans']}-channel input")
    facts.add_row("parameters", f"{summary['params']:,}")
    facts.add_row("MACs", f"{summary['macs'] / 1e6:,.1f} M at {summary['input_size']}x{summary['input_size']}")
    labels = summary.get("labels")
    facts.add_row(
        "classes",
        str(summary["num_classes"])
        + (f" ({', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''})" if labels else ""),
    )
    facts.add_row("stage widths", " / ".join(map(str, summary["stage_widths"])))

    groups = Table(title="Channels tied by residual additions (pruned together or not at all)")
    for column in ("stage", "channels", "written by", "read by", "zero-padded from"):
        groups.add_column(column)
    for group in summary["residual_groups"]:
        pad = group["padded_from"]
        padded = f"{pad['source']} -> channels {pad['offset']}..{pad['offset'] + pad['channels'] - 1}" if pad else ""
        groups.add_row(
            group["stage"], str(group["channels"]), _names(group["producers"]), _names(group["consumers"]), padded
        )
    return Group(facts, groups)


def _options_text(options: dict) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else ""


def _names(names) -> str:
    names = list(names)
    return ", ".join(names) if len(names) <= 4 else ", ".join(names[:3]) + f", ... ({len(names)} modules)"
