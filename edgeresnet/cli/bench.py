"""`edgeresnet bench` and `edgeresnet report`: each file measured here or on a device, and runs
compared side by side. Neither needs torch: they work on a runner-only install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .options import data_option, json_option, limit_option, seed_option
from .output import fail, log, print_json, work_on_stderr


@click.command("bench")
@click.argument("path", type=click.Path(path_type=Path))
@data_option
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per inference [default: all cores].")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Timed inferences.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed inferences first.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Images per inference.")
@click.option(
    "--openvino-device",
    "device",
    default="CPU",
    show_default=True,
    help="The device OpenVINO files run on (CPU, GPU, NPU); --device is compress's training device.",
)
@limit_option
@seed_option
@click.option(
    "--json-out",
    "output",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Also write the JSON result to this file (--out names directories, on other commands).",
)
@click.option(
    "--ssh",
    "ssh_destination",
    metavar="[USER@]HOST",
    help="Run on this device over SSH: copies the artifacts, --data and the runner, brings the JSON back.",
)
@click.option(
    "--ssh-config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="ssh config file to use (default: ~/.ssh/config).",
)
@click.option(
    "--remote-python",
    default="python3",
    show_default=True,
    help="Python on the device that has the runner's dependencies.",
)
@click.option("--keep-remote", is_flag=True, help="Leave the work directory on the device.")
@click.option(
    "--no-labels",
    is_flag=True,
    help="Ignore --data's labels: agreement with PyTorch FP32, no accuracy (what unlabelled --data gets anyway).",
)
@json_option
def bench_command(
    path,
    data,
    threads,
    runs,
    warmup,
    batch,
    device,
    limit,
    seed,
    output,
    ssh_destination,
    ssh_config,
    remote_python,
    keep_remote,
    no_labels,
    as_json,
):
    """Latency, memory and accuracy of each artifact at PATH (a run directory, or one artifact).

    Accuracy is measured on --data (default: the images the run was evaluated on, if they
    are here), with the delta against the PyTorch baseline in each manifest. On unlabelled
    --data, accuracy reads "no labels" and agreement with PyTorch FP32 is measured.
    """
    from ..runner.api import bench

    config = _bench_config(
        threads=threads,
        runs=runs,
        warmup=warmup,
        batch=batch,
        device=device,
        limit=limit,
        seed=seed,
        labels=False if no_labels else None,
    )
    ssh = None
    if ssh_destination:
        from ..runner.remote import SSHDevice

        ssh = SSHDevice(ssh_destination, ssh_config, remote_python, keep_remote)
    with work_on_stderr():
        report = bench(path, data, config, ssh=ssh, json_out=output, log=log)
    _print_bench(report, as_json)
    failed = [row.target for row in report.results if row.status == "failed"]
    if failed:  # the others were measured and written: a partial result, exit code 3 as a failed guard
        fail(
            f"{len(failed)} of {len(report.results)} files could not be measured ({', '.join(failed)}): "
            "the table says why; the others were measured",
            code=3,
        )


def _bench_config(**values):
    from ..runner.bench import BenchConfig

    return BenchConfig(**{key: value for key, value in values.items() if value is not None})


def _print_bench(report, as_json) -> None:
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        from rich.console import Console

        from ..run_report import bench_table

        # Not squeezed into 80 when stdout is a file or a pipe, unless COLUMNS says how wide.
        Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120).print(bench_table(report))


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("comparison"),
    show_default=True,
    help="Directory for comparison.md, comparison.html and the PNG plots.",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="The accuracy budget (top-1 points below FP32) within which each device's fastest file is named.",
)
@json_option
def report_command(runs, out, max_accuracy_drop, as_json):
    """Compare RUNS (run directories, benchmarked on one or more devices) in one table and three plots,
    and name per device the fastest file within the accuracy budget."""
    from ..reporting.api import report
    from ..reporting.render import markdown

    comparison = report(list(runs), out, max_accuracy_drop=max_accuracy_drop, log=log)
    if as_json:
        print_json(comparison.to_dict())
    else:
        notes = comparison.per_device
        click.echo(
            markdown(comparison.rows) + "".join(f"\n{note}" for note in notes) + ("\n" if notes else ""), nl=False
        )
