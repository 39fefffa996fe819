"""`edgeresnet export` and `edgeresnet compress`: flags in, ``edgeresnet.compress`` called, the run's
table (or JSON) out, and what was written and what to run next on stderr."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import AccuracyDropError
from .options import max_drop_option, run_options, train_data_option
from .output import log, print_json, work_on_stderr


@click.command()
@run_options
@train_data_option("Images int8 targets calibrate on, labelled or not [default: --data].")
@max_drop_option("no check")
def export(**options):
    """Export MODEL to each --target, verify each file against PyTorch, and measure it on --data.

    int8 targets are calibrated on --train-data (or --data).
    --data may be unlabelled: files are calibrated, verified and timed, and accuracy reads
    "no labels". Without --data, targets that need no calibration (onnx, fp32, fp16) are
    verified and timed on the embedded sample images, unlabelled, resized to the model's input.
    With no MODEL and no --data, runs on the embedded demo ResNet-20 and 300 CIFAR-10 images.
    """
    _run_pipeline(**options)


@click.command()
@run_options
@train_data_option(
    "Training images: what training stages learn on, pruning ranks channels on and int8 calibrates "
    "on [default for calibration: --data]; calibration and distill with alpha 1 take unlabelled "
    "images."
)
@max_drop_option("the recipe's max_accuracy_drop; no check without a recipe")
@click.option(
    "--recipe",
    help="Stages to run: a builtin name (see `edgeresnet recipes list`) or a YAML file. "
    "Default: none, quantize after training only.",
)
@click.option(
    "-o",
    "--set",
    "overrides",
    multiple=True,
    metavar="STAGE.KEY=VALUE",
    help="Override a recipe setting, e.g. -o qat.epochs=2; repeatable.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run at --out from its last finished stage or epoch (same command, same result).",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "mps"]),
    default="cpu",
    show_default=True,
    help="Where the training stages run (distill, qat). Under torchrun, each process takes its own GPU.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Threads that decode training images (large inputs) [default: min(4, cores)].",
)
@click.option(
    "--prefetch",
    type=click.IntRange(0, 64),
    help="Training batches prepared ahead on a background thread [default: 2 on a GPU, 0 on the CPU].",
)
def compress(**options):
    """Compress MODEL for each --target: run the --recipe's stages (prune, distill, qat), export,
    verify and measure on --data.

    Training stages learn on --train-data. With no MODEL and no --data, runs on the embedded
    demo ResNet-20 and 300 CIFAR-10 images.
    """
    _run_pipeline(**options)


def _run_pipeline(
    model,
    data,
    train_data,
    targets,
    out,
    overwrite,
    calibration_size,
    image_input,
    io_dtype,
    min_agreement,
    max_accuracy_drop,
    arch,
    trust_checkpoint,
    limit,
    seed,
    threads,
    as_json,
    recipe=None,
    overrides=(),
    resume=False,
    device="cpu",
    workers=None,
    prefetch=None,
    **preprocess,
):
    # edgeresnet.compress checks the recipe, the targets, the model's path and --out before
    # torch loads; the option models below are light (pydantic only).
    from ..pipeline.api import compress as run

    with work_on_stderr():
        try:
            report = run(
                model,
                data,
                targets,
                out,
                recipe=recipe,
                overrides=overrides,
                train_data=train_data,
                options=_options(calibration_size, seed, image_input, io_dtype, min_agreement, threads),
                overwrite=overwrite,
                resume=resume,
                max_accuracy_drop=max_accuracy_drop,
                execution=_execution(device, workers, prefetch),
                arch=arch,
                trust_checkpoint=trust_checkpoint,
                preprocess=preprocess,
                limit=limit,
                seed=seed,
                log=log,
            )
            failed = None
        except AccuracyDropError as error:  # the results still go to stdout: they show what failed
            failed, report = error, error.report
    if report is None:  # a torchrun process other than rank 0: it trained, rank 0 reports
        return
    _print_run(report.directory, report, as_json)
    _closing_summary(report.directory, report)
    if failed:
        raise failed


def _options(calibration_size, seed, image_input, io_dtype, min_agreement, threads) -> dict:
    """CompressOptions' fields: edgeresnet.compress validates them after its fast checks (the
    models that hold them import torch)."""
    return {
        "calibration": {"size": calibration_size, "seed": seed},
        "export": {"image_input": image_input, "io_dtype": io_dtype, "min_agreement": min_agreement},
        "threads": threads,
    }


def _execution(device, workers, prefetch):
    from ..training.config import Execution

    return Execution(device=device, workers=workers, prefetch=prefetch)


def _closing_summary(out: Path, report) -> None:
    """What was written and what to run next, on stderr (stdout holds the results), as exporters
    like `yolo export` end."""
    from ..run_report import human_size

    log(f"wrote {out}:")
    for row in report.results:
        if row.file:
            log(f"  {out / row.file}  ({human_size(row.size_bytes)})")
    log(f"next: edgeresnet bench {out}   (latency, memory and accuracy here; --ssh USER@DEVICE on a device)")
    log(f"      edgeresnet report {out}  (comparison table and plots)")


def _print_run(out: Path, report, as_json: bool) -> None:
    from ..run_report import results_table, stages_table

    if as_json:
        print_json({"run": str(out), **report.model_dump()})
    else:
        from rich.console import Console

        if report.stages and len(report.stages) > 1:
            Console().print(stages_table(report.stages))
        Console().print(results_table(report))
