"""`edgeresnet prune` and `edgeresnet sensitivity`: channels out, and what each layer can lose."""

from __future__ import annotations

from pathlib import Path

import click

from ..pipeline.checks import check_model_path
from .options import data_option, evaluation_options, model_argument, pruning_options, resolve_data_option, stage_config
from .output import log, print_json, work_on_stderr


@click.command("prune")
@model_argument
@data_option
@click.option(
    "--train-data",
    type=click.Path(path_type=Path),
    callback=resolve_data_option,
    help="Images for Taylor importance and batch-norm recalibration (default: --data).",
)
@pruning_options
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Directory for the pruned model (default: runs/<arch>-pruned-<time>).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it already holds files.")
@evaluation_options
def prune_command(
    model,
    data,
    train_data,
    ratio,
    macs,
    latency_ms,
    latency_target,
    importance,
    scope,
    round_to,
    remove_blocks,
    block_cost,
    out,
    overwrite,
    arch,
    trust_checkpoint,
    limit,
    seed,
    threads,
    as_json,
    **preprocess,
):
    """Remove whole channels (and, with --remove-blocks, whole blocks) from MODEL.

    Writes model.safetensors and channel-plan.json (which `edgeresnet.load`, `export` and
    `compress` read back) and prune-report.json. Accuracy before and after is measured on
    --data; recovering it is the job of fine-tuning.
    """
    import time

    check_model_path(model)  # before torch loads
    if out is not None:
        from ..rundir import check_output_dir

        check_output_dir(Path(out), overwrite)
    from ..data import open_dataset
    from ..pipeline.inputs import in_model_order, model_and_data, require_labels
    from ..pipeline.prune_run import prune_table, write_pruned
    from ..stages.prune import LatencyProbe, PruneConfig

    config = stage_config(
        PruneConfig,
        ratio=ratio,
        macs=macs,
        latency_ms=latency_ms,
        importance=importance,
        scope=scope,
        round_to=round_to,
        remove_blocks=remove_blocks,
        block_cost=block_cost,
        seed=seed,
        latency=stage_config(LatencyProbe, target=latency_target, threads=threads),
    )
    if latency_ms is not None or block_cost == "latency":
        from ..export import parse_targets

        parse_targets([latency_target])
    with work_on_stderr():
        loaded, dataset = model_and_data(
            model, data, arch=arch, trust_checkpoint=trust_checkpoint, preprocess=preprocess, log=log
        )
        require_labels(dataset, "prune measures top-1 before and after on --data, which")
        dataset = dataset.subset(limit, seed=seed)
        train = in_model_order(open_dataset(train_data), loaded) if train_data else dataset
        out = out or Path("runs") / f"{loaded.arch}-pruned-{time.strftime('%Y%m%d-%H%M%S')}"
        report = write_pruned(loaded, config, dataset, train, out, overwrite=overwrite, threads=threads, log=log)
    log(f"wrote {out}")
    if as_json:
        print_json({"out": str(out), **report})
    else:
        from rich.console import Console

        Console().print(prune_table(report))


@click.command("sensitivity")
@model_argument
@data_option
@click.option("--ratios", default="0.25,0.5,0.75", show_default=True, help="Pruning ratios to try, comma-separated.")
@click.option(
    "--importance",
    type=click.Choice(["l1", "l2", "bn"]),
    default="l1",
    show_default=True,
    help="Which channels go at each ratio.",
)
@click.option(
    "--round-to", type=click.IntRange(min=1), default=8, show_default=True, help="Kept widths are multiples of this."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("sensitivity"),
    show_default=True,
    help="Directory for sensitivity.json, sensitivity.md and sensitivity.png.",
)
@evaluation_options
def sensitivity_command(
    model, data, ratios, importance, round_to, out, arch, trust_checkpoint, limit, seed, threads, as_json, **preprocess
):
    """Top-1 of MODEL on --data with one layer pruned at a time, at each ratio: a table and a plot."""
    from ..errors import require
    from ..pipeline.inputs import model_and_data, number, require_labels
    from ..pruning.sensitivity import SensitivityConfig, markdown, plot, sensitivity

    require(("matplotlib",), "the sensitivity plot", "report")  # before the work, not after it
    values = tuple(number(r.strip(), float, "--ratios") for r in ratios.split(",") if r.strip())
    config = stage_config(
        SensitivityConfig,
        ratios=values,
        importance=importance,
        round_to=round_to,
        images=limit or 1000,
        seed=seed,
        threads=threads,
    )
    with work_on_stderr():
        loaded, dataset = model_and_data(
            model, data, arch=arch, trust_checkpoint=trust_checkpoint, preprocess=preprocess, log=log
        )
        require_labels(dataset, "sensitivity measures top-1 on --data, which")
        report = sensitivity(loaded, dataset, config)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sensitivity.json").write_text(report.model_dump_json(indent=2) + "\n")
        (out / "sensitivity.md").write_text(markdown(report))
        plot(report, out / "sensitivity.png")
    log(f"wrote {out}/sensitivity.json, sensitivity.md and sensitivity.png")
    if as_json:
        print_json(report.model_dump())
    else:
        click.echo(markdown(report), nl=False)
