"""`edgeresnet inspect` and `edgeresnet evaluate`: what a model is, and how accurate."""

from __future__ import annotations

import click

from .options import (
    arch_option,
    data_option,
    evaluation_options,
    json_option,
    model_argument,
    preprocess_options,
    trust_option,
)
from .output import log, print_json


@click.command()
@model_argument
@arch_option
@trust_option
@preprocess_options
@json_option
def inspect(model, arch, trust_checkpoint, as_json, **preprocess):
    """Architecture, parameters, MACs, width per stage and residual channel groups of MODEL."""
    from ..inspection import inspect_model, summary_table
    from ..pipeline.inputs import model_and_data

    loaded, _ = model_and_data(
        model, None, arch=arch, trust_checkpoint=trust_checkpoint, preprocess=preprocess, need_data=False, log=log
    )
    summary = inspect_model(loaded)
    if as_json:
        print_json(summary)
    else:
        from rich.console import Console

        Console().print(summary_table(summary))


@click.command("evaluate")
@model_argument
@data_option
@evaluation_options
def evaluate_command(model, data, arch, trust_checkpoint, limit, seed, threads, as_json, **preprocess):
    """Top-1 and top-5 of MODEL on --data."""
    from ..evaluate import evaluate
    from ..pipeline.inputs import model_and_data, require_labels

    loaded, dataset = model_and_data(
        model, data, arch=arch, trust_checkpoint=trust_checkpoint, preprocess=preprocess, log=log
    )
    require_labels(dataset, "evaluate measures top-1 on --data, which")
    dataset = dataset.subset(limit, seed=seed)
    accuracy = evaluate(loaded.predictor(threads), dataset, loaded.preprocess, progress="Evaluating")
    result = {
        "model": loaded.source,
        "arch": loaded.arch,
        "data": dataset.source,
        "samples": accuracy.n,
        "top1": accuracy.top1,
        "top5": accuracy.top5,
    }
    if as_json:
        print_json(result)
    else:
        click.echo(f"{loaded.arch}: top-1 {accuracy.top1:.2f}%  top-5 {accuracy.top5:.2f}%  on {accuracy.n} images")
