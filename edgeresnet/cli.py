"""The `edgeresnet` command: parse, call the API, print.

Results go to stdout (a table, or JSON with --json); progress and messages go to
stderr. Every error caused by the user's input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from pathlib import Path

import click

from .errors import AccuracyDropError, EdgeResNetError

# The same flag means the same thing in every command.
model_argument = click.argument("model", required=False, metavar="[MODEL]")
arch_option = click.option("--arch", help="Architecture name (e.g. resnet56); overrides detection from the weights.")
trust_option = click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Allow a checkpoint that needs full unpickling (it can run code: only for files you trust).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")


def _data_path(ctx, param, value: Path | None) -> Path | None:
    """A data path as given; ``samples`` names the embedded sample images (data.resolve_data_path)."""
    from .data import resolve_data_path

    return None if value is None else resolve_data_path(value)


data_option = click.option(
    "--data",
    type=click.Path(path_type=Path),
    callback=_data_path,
    help="Evaluation images: ImageFolder directory (root/<class>/<image>), .zip of one, or .npz; "
    "unlabelled: loose images (root/<image>) or an .npz of images alone; "
    "`samples`: the 300 CIFAR-10 images edgeresnet embeds.",
)
limit_option = click.option(
    "--limit", type=click.IntRange(min=1), help="Evaluate a seeded random subset of this many images."
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsets and calibration.")
# One default everywhere (compress, export, prune, bench): every core, as an app on the device gets them.
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=lambda: os.cpu_count() or 1,
    show_default="all cores",
    help="CPU threads for inference.",
)


def _stack(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


preprocess_options = _stack(
    click.option(
        "--input-size", type=click.IntRange(min=1), help="Model input size in pixels (CIFAR 32, ImageNet 224)."
    ),
    click.option("--resize", help="Resize the shorter side to this many pixels before the centre crop, or 'none'."),
    click.option("--mean", help="Normalisation mean per channel, e.g. 0.485,0.456,0.406."),
    click.option("--std", help="Normalisation std per channel, e.g. 0.229,0.224,0.225."),
    click.option(
        "--channel-order",
        type=click.Choice(["RGB", "BGR", "L"]),
        help="Channel order the model expects (L: one gray channel).",
    ),
)
# What every command that loads MODEL and evaluates it on --data takes.
evaluation_options = _stack(
    arch_option, trust_option, limit_option, seed_option, threads_option, preprocess_options, json_option
)


NEEDS_COMPRESS_EXTRA = ("torch", "safetensors")


class Group(click.Group):
    """Turns every user error, ours or click's, into one line and exit code 2; SIGINT and SIGTERM
    into a clean stop (a run keeps what `--resume` continues from)."""

    def main(self, *args, **kwargs):
        from .interrupts import Interrupted, stop_on_signals

        try:
            with stop_on_signals() as received:
                try:
                    return super().main(*args, standalone_mode=False, **kwargs)
                except Exception as error:
                    if received and not isinstance(error, click.exceptions.Exit):
                        raise Interrupted(received[0]) from error  # a library's error about our stop
                    raise
        except EdgeResNetError as error:
            fail(error.one_line(), code=error.exit_code)
        except ModuleNotFoundError as error:
            if error.name not in NEEDS_COMPRESS_EXTRA:
                raise
            # A runner-only install (a device): every command but `bench` needs PyTorch.
            fail(
                f"this command needs {error.name}, which a runner-only install lacks; install it with "
                f"pip install torch==2.13.0 'edgeresnet[compress]' (the CPU build of torch first)"
            )
        except click.UsageError as error:
            if type(error).__name__.startswith("NoArgsIsHelp"):  # bare `edgeresnet`: help, as asked
                click.echo(error.ctx.get_help())
                return
            hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
            message = error.format_message()
            if isinstance(error, click.NoSuchOption) and error.option_name in OTHER_TOOLS_FLAGS:
                # Another exporter's flag: say ours, not the closest spelling click finds.
                message = f"No such option '{error.option_name}': {OTHER_TOOLS_FLAGS[error.option_name]}"
            fail(f"{message}{hint}")
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # The run was staged in a hidden folder, removed on the way out: nothing half-written remains.
            where = f" while writing {error.filename}" if error.filename else ""
            fail(
                f"no space left on the disk{where}; free some space or choose an --out on another disk, "
                "then run the command again"
            )
        except (click.exceptions.Abort, KeyboardInterrupt) as error:
            stop = error.__cause__ if isinstance(error, click.exceptions.Abort) else error  # click wraps it in Abort
            if isinstance(stop, Interrupted):
                fail(f"interrupted by {stop.name}.", code=stop.exit_code)
            fail("interrupted.", code=130)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)


# Flags of other export tools (yolo export, optimum-cli, trtexec) that users try, and what edgeresnet calls them.
OTHER_TOOLS_FLAGS = {
    "--format": "the file type is the target: --target tflite-int8 (`edgeresnet targets` lists them)",
    "--int8": "int8 is a target: --target tflite-int8, openvino-int8 or tensorrt-int8",
    "--half": "fp16 is a target: --target tflite-fp16, openvino-fp16, coreml-fp16 or tensorrt-fp16",
    "--imgsz": "the input size is --input-size",
    "--output": "a run directory is --out; bench writes its JSON to a file with --json-out",
}


def fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def log(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the job
        click.echo(message, err=True)


def work_on_stderr():
    """While the work runs, whatever a library prints (NNCF's progress bars) goes to stderr:
    stdout carries the result alone, so that `--json` output parses."""
    return contextlib.redirect_stdout(sys.stderr)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeresnet")
def main():
    """Turn a trained PyTorch ResNet into measured, deployable edge artifacts."""


def _check_model_path(model_path) -> None:
    """A MODEL that is not there is the first thing to say, before data and before torch loads."""
    if model_path is not None and not Path(model_path).exists():
        raise EdgeResNetError(f"model file not found: {model_path}", "check the path")


def _model_and_data(model_path, data_path, arch, trust, preprocess_overrides, need_data=True):
    _check_model_path(model_path)
    from .assets import DEMO_DATA, DEMO_MODEL
    from .data import open_dataset

    if model_path is None:
        model_path = DEMO_MODEL
        data_path = data_path or DEMO_DATA
        log(f"no MODEL given: using the embedded demo ResNet-20 and {Path(data_path).name}")
    if data_path is None and need_data:
        raise EdgeResNetError(
            "no evaluation data given", "pass --data with an ImageFolder directory, a .zip of one, or an .npz"
        )
    data = open_dataset(data_path) if data_path is not None else None
    model = _load(model_path, arch, trust, preprocess_overrides)
    if data is None:
        return model, None
    from .loading import fit_labels

    data = fit_labels(model.num_classes, data, log)  # the class count, or no labels at all
    if data.labelled and not model.labels:
        model = model.replace(labels=data.classes)
    return model, _in_model_order(data, model)


def _in_model_order(data, model):
    """Data labelled in the model's own label order (a Hugging Face id2label), not the folders'
    alphabetical one, when both name the same classes."""
    if model.labels and sorted(model.labels) == sorted(data.classes):
        return data.in_class_order(model.labels)
    return data


def _load(model_path, arch, trust, overrides):
    from .loading import load_model

    model = load_model(model_path, arch=arch, trust_checkpoint=trust)
    if any(value is not None for value in overrides.values()):
        model = model.replace(preprocess=_override_preprocess(model.preprocess, **overrides))
    return model


def _override_preprocess(spec, input_size, resize, mean, std, channel_order):
    from pydantic import ValidationError

    changes = {}
    if input_size is not None:
        changes["input_size"] = input_size
    if resize is not None:
        changes["resize"] = None if resize.lower() == "none" else _number(resize, int, "--resize")
    for name, value in (("mean", mean), ("std", std)):
        if value is not None:
            parts = [_number(p, float, f"--{name}") for p in value.split(",")]
            channels = 1 if (channel_order or spec.channel_order) == "L" else 3
            if len(parts) != channels:
                raise EdgeResNetError(
                    f"--{name} needs {channels} comma-separated number{'s' if channels > 1 else ''} "
                    f"(one per channel), got {value!r}",
                    "e.g. " + ",".join(["0.5"] * channels),
                )
            changes[name] = tuple(parts)
    if channel_order is not None:
        changes["channel_order"] = channel_order
        if (channel_order == "L") != (spec.channel_order == "L"):  # one value per channel from now on
            converted = (
                spec.grayscale()
                if channel_order == "L"
                else spec.model_copy(update={"mean": spec.mean * 3, "std": spec.std * 3})
            )
            changes = {"mean": converted.mean, "std": converted.std, **changes}
    try:
        return type(spec).model_validate({**spec.model_dump(), **changes})
    except ValidationError as error:
        raise EdgeResNetError(
            f"invalid preprocessing: {error.errors()[0]['msg']}", "check --input-size, --resize, --mean and --std"
        ) from None


def _number(text, kind, flag):
    try:
        return kind(text)
    except ValueError:
        raise EdgeResNetError(f"{flag} expects a number, got {text!r}") from None


def _require_labels(dataset, what: str) -> None:
    if not dataset.labelled:
        raise EdgeResNetError(
            f"{what} needs labels, and {dataset.source} has none (no class folders)",
            "pass an ImageFolder directory (root/<class>/<image>), a .zip of one, or an .npz with "
            "'images' and 'labels'; for unlabelled images use export or compress (agreement and "
            "latency) or bench",
        )


def _print_json(payload) -> None:
    click.echo(json.dumps(payload, indent=2))


# What `export` and `compress` take: the model, the data, the targets and where to write.
run_options = _stack(
    model_argument,
    data_option,
    click.option(
        "--target",
        "targets",
        multiple=True,
        help="Export target, repeatable or comma-separated (see `edgeresnet targets`).",
    ),
    click.option("--out", type=click.Path(path_type=Path), help="Run directory (default: runs/<arch>-<time>)."),
    click.option("--overwrite", is_flag=True, help="Replace --out if it already holds a run."),
    click.option(
        "--calibration-size",
        type=click.IntRange(min=1),
        default=256,
        show_default=True,
        help="Images for int8 calibration.",
    ),
    click.option(
        "--image-input",
        is_flag=True,
        help="Bake the preprocessing in: TFLite, OpenVINO and Core ML files take a uint8 RGB image and "
        "return class probabilities (for apps).",
    ),
    click.option(
        "--io-dtype",
        type=click.Choice(["int8", "uint8", "float32"]),
        help="Input and output type of int8 TFLite files [default: int8; with --image-input the input "
        "is the uint8 image and the output float32].",
    ),
    click.option(
        "--min-agreement",
        type=click.FloatRange(0, 100),
        help="Top-1 agreement (percent) each file must reach with what it is checked against [default: "
        "an int8 file against the simulation of its runtime's integer arithmetic 99.5, against "
        "float PyTorch where no simulation exists 95; fp16 99.9, fp32 100].",
    ),
    evaluation_options,
)


def _train_data_option(help_text: str):
    return click.option("--train-data", type=click.Path(path_type=Path), callback=_data_path, help=help_text)


def _max_drop_option(default_text: str):
    return click.option(
        "--max-accuracy-drop",
        type=click.FloatRange(0, 100),
        metavar="POINTS",
        help="Fail the run (exit code 3, artifacts kept and marked failed) when a file loses more "
        f"top-1 points than this against the input model [default: {default_text}].",
    )


@main.command()
@run_options
@_train_data_option("Images int8 targets calibrate on, labelled or not [default: --data].")
@_max_drop_option("no check")
def export(**options):
    """Export MODEL to each --target, verify each file against PyTorch, and measure it on --data.

    int8 targets are calibrated on --train-data (or --data).
    --data may be unlabelled: files are calibrated, verified and timed, and accuracy reads
    "no labels". Without --data, targets that need no calibration (onnx, fp32, fp16) are
    verified and timed on the embedded sample images, unlabelled, resized to the model's input.
    With no MODEL and no --data, runs on the embedded demo ResNet-20 and 300 CIFAR-10 images.
    """
    _run_pipeline(**options)


@main.command()
@run_options
@_train_data_option(
    "Training images: what training stages learn on, pruning ranks channels on and int8 calibrates "
    "on [default for calibration: --data]; calibration and distill with alpha 1 take unlabelled "
    "images."
)
@_max_drop_option("the recipe's max_accuracy_drop; no check without a recipe")
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
    import time

    from .export.targets import check_calibration_source, parse_targets
    from .rundir import check_output_dir

    # Before any slow work (torch, the converters): a typo in a recipe, an override or a target,
    # a model file that is not there and an --out that holds files fail at once.
    loaded_recipe = None
    if recipe is not None:
        from .recipes import load_recipe

        loaded_recipe = load_recipe(recipe, overrides)
    elif overrides:
        raise EdgeResNetError(
            "-o overrides a recipe setting, but no --recipe is given", "pass --recipe, e.g. --recipe qat-int8"
        )
    if not targets and loaded_recipe is not None:
        targets = loaded_recipe.targets
    target_list = parse_targets(targets)
    _check_model_path(model)
    if data is None and model is not None:  # int8 needs calibration images
        check_calibration_source(target_list, train_data is not None)
    if resume and out is None:
        raise EdgeResNetError("--resume needs the --out of the interrupted run", "pass the same --out as before")
    if out is not None and not resume:
        check_output_dir(Path(out), overwrite)
    from . import distributed
    from .data import open_dataset
    from .export import ExportConfig
    from .pipeline import CompressOptions
    from .pipeline import compress as run_compress
    from .stages.ptq import PtqConfig
    from .training.config import Execution

    execution = Execution(device=device, workers=workers, prefetch=prefetch)
    distributed.check_device(device)  # before the slow loading
    if distributed.launched_by_torchrun() and out is None:
        raise EdgeResNetError(
            "under torchrun, compress needs --out (every process must name the same run)", "pass --out DIR"
        )
    with work_on_stderr():
        loaded, dataset = _model_and_data(model, data, arch, trust_checkpoint, preprocess, need_data=False)
        if dataset is None:
            from .pipeline import embedded_samples

            dataset = embedded_samples(log)
        dataset = dataset.subset(limit, seed=seed)
        calibration_data = _in_model_order(open_dataset(train_data), loaded) if train_data else None
        options = CompressOptions(
            calibration=PtqConfig(size=calibration_size, seed=seed),
            export=ExportConfig(image_input=image_input, io_dtype=io_dtype, min_agreement=min_agreement),
            threads=threads,
        )
        out = out or Path("runs") / f"{loaded.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
        failed = None
        try:
            report = run_compress(
                loaded,
                dataset,
                target_list,
                out,
                recipe=loaded_recipe,
                train_data=calibration_data,
                options=options,
                overwrite=overwrite,
                resume=resume,
                max_accuracy_drop=max_accuracy_drop,
                execution=execution,
                log=log,
            )
        except AccuracyDropError as error:  # the results still go to stdout: they show what failed
            failed, report = error, error.report
    if report is None:  # a torchrun process other than rank 0: it trained, rank 0 reports
        return
    _print_run(out, report, as_json)
    _closing_summary(out, report)
    if failed:
        raise failed


def _closing_summary(out: Path, report) -> None:
    """What was written and what to run next, on stderr (stdout holds the results), as exporters
    like `yolo export` end."""
    from .report import human_size

    log(f"wrote {out}:")
    for row in report.results:
        if row.file:
            log(f"  {out / row.file}  ({human_size(row.size_bytes)})")
    log(f"next: edgeresnet bench {out}   (latency, memory and accuracy here; --ssh USER@DEVICE on a device)")
    log(f"      edgeresnet report {out}  (comparison table and plots)")


def _print_run(out: Path, report, as_json: bool) -> None:
    from .report import results_table, stages_table

    if as_json:
        _print_json({"run": str(out), **report.model_dump()})
    else:
        from rich.console import Console

        if report.stages and len(report.stages) > 1:
            Console().print(stages_table(report.stages))
        Console().print(results_table(report))


def _config(cls, **values):
    """A stage's config from flags; a value out of range is one line naming the flag."""
    from pydantic import ValidationError

    try:
        return cls(**{key: value for key, value in values.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "the options"
        raise EdgeResNetError(
            f"invalid {flag}: {first['msg'].removeprefix('Value error, ')}",
            f"see `edgeresnet {click.get_current_context().info_name} --help`",
        ) from None


pruning_options = _stack(
    click.option("--ratio", type=float, help="Fraction of channels to remove (0..1)."),
    click.option("--macs", type=float, help="Remove channels until MACs fall by this factor, e.g. 2.0."),
    click.option(
        "--latency-ms", type=float, help="Remove channels until p50 latency on --latency-target is at most this."
    ),
    click.option(
        "--latency-target",
        default="tflite-int8",
        show_default=True,
        help="Artifact whose latency --latency-ms and --block-cost latency measure.",
    ),
    click.option(
        "--importance",
        type=click.Choice(["taylor", "l1", "l2", "bn"]),
        default="taylor",
        show_default=True,
        help="Channel importance: first-order Taylor on --train-data, filter L1/L2 norm, or BN scale.",
    ),
    click.option(
        "--scope",
        type=click.Choice(["global", "local"]),
        default="global",
        show_default=True,
        help="One threshold for the whole network, or the same ratio in every layer.",
    ),
    click.option(
        "--round-to",
        type=click.IntRange(min=1),
        default=8,
        show_default=True,
        help="Kept widths are multiples of this, so that int8 kernels stay fast.",
    ),
    click.option(
        "--remove-blocks",
        is_flag=True,
        help="Remove whole residual blocks first (least important per cost), then channels.",
    ),
    click.option(
        "--block-cost",
        type=click.Choice(["macs", "latency"]),
        default="macs",
        show_default=True,
        help="What a removed block saves, to rank blocks: its MACs, or its latency on --latency-target.",
    ),
)


@main.command("prune")
@model_argument
@data_option
@click.option(
    "--train-data",
    type=click.Path(path_type=Path),
    callback=_data_path,
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

    _check_model_path(model)  # before torch loads
    if out is not None:
        from .rundir import check_output_dir

        check_output_dir(Path(out), overwrite)
    from .data import open_dataset
    from .pruning.report import prune_table, write_pruned
    from .stages.prune import LatencyProbe, PruneConfig

    config = _config(
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
        latency=_config(LatencyProbe, target=latency_target, threads=threads),
    )
    if latency_ms is not None or block_cost == "latency":
        from .export import parse_targets

        parse_targets([latency_target])
    with work_on_stderr():
        loaded, dataset = _model_and_data(model, data, arch, trust_checkpoint, preprocess)
        _require_labels(dataset, "prune measures top-1 before and after on --data, which")
        dataset = dataset.subset(limit, seed=seed)
        train = _in_model_order(open_dataset(train_data), loaded) if train_data else dataset
        out = out or Path("runs") / f"{loaded.arch}-pruned-{time.strftime('%Y%m%d-%H%M%S')}"
        report = write_pruned(loaded, config, dataset, train, out, overwrite=overwrite, threads=threads, log=log)
    log(f"wrote {out}")
    if as_json:
        _print_json({"out": str(out), **report})
    else:
        from rich.console import Console

        Console().print(prune_table(report))


@main.command("sensitivity")
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
    from .errors import require
    from .pruning.sensitivity import SensitivityConfig, markdown, plot, sensitivity

    require(("matplotlib",), "the sensitivity plot", "report")  # before the work, not after it
    values = tuple(_number(r.strip(), float, "--ratios") for r in ratios.split(",") if r.strip())
    config = _config(
        SensitivityConfig,
        ratios=values,
        importance=importance,
        round_to=round_to,
        images=limit or 1000,
        seed=seed,
        threads=threads,
    )
    with work_on_stderr():
        loaded, dataset = _model_and_data(model, data, arch, trust_checkpoint, preprocess)
        _require_labels(dataset, "sensitivity measures top-1 on --data, which")
        report = sensitivity(loaded, dataset, config)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sensitivity.json").write_text(report.model_dump_json(indent=2) + "\n")
        (out / "sensitivity.md").write_text(markdown(report))
        plot(report, out / "sensitivity.png")
    log(f"wrote {out}/sensitivity.json, sensitivity.md and sensitivity.png")
    if as_json:
        _print_json(report.model_dump())
    else:
        click.echo(markdown(report), nl=False)


@main.command()
@model_argument
@arch_option
@trust_option
@preprocess_options
@json_option
def inspect(model, arch, trust_checkpoint, as_json, **preprocess):
    """Architecture, parameters, MACs, width per stage and residual channel groups of MODEL."""
    from .inspection import inspect_model, summary_table

    loaded, _ = _model_and_data(model, None, arch, trust_checkpoint, preprocess, need_data=False)
    summary = inspect_model(loaded)
    if as_json:
        _print_json(summary)
    else:
        from rich.console import Console

        Console().print(summary_table(summary))


@main.command("evaluate")
@model_argument
@data_option
@evaluation_options
def evaluate_command(model, data, arch, trust_checkpoint, limit, seed, threads, as_json, **preprocess):
    """Top-1 and top-5 of MODEL on --data."""
    from .evaluate import evaluate

    loaded, dataset = _model_and_data(model, data, arch, trust_checkpoint, preprocess)
    _require_labels(dataset, "evaluate measures top-1 on --data, which")
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
        _print_json(result)
    else:
        click.echo(f"{loaded.arch}: top-1 {accuracy.top1:.2f}%  top-5 {accuracy.top5:.2f}%  on {accuracy.n} images")


@main.command("bench")
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
    from .data import open_dataset
    from .runner.bench import bench, default_data

    if not Path(path).exists():  # the first thing to say, before any note about data
        raise EdgeResNetError(
            f"{path} does not exist", "pass a run directory or an artifact written by `edgeresnet export`"
        )
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
    with work_on_stderr():
        data_path = data
        if data_path is None and (found := default_data(path, seed)):
            data_path, run_subset, labelled = found
            if config.limit is None and run_subset:
                config = config.model_copy(update={"limit": run_subset})  # the run's own seeded subset
            if not labelled:  # the run read them without labels (the embedded samples, say): so does bench
                config = config.model_copy(update={"labels": False})
        if data_path is None:
            log("no --data given and none recorded for this run: measuring latency and memory only")
        if ssh_destination:
            from .runner.remote import SSHDevice, remote_bench

            device_spec = SSHDevice(ssh_destination, ssh_config, remote_python, keep_remote)
            report = remote_bench(path, data_path, config, device_spec, log=log)
        else:
            report = bench(path, open_dataset(data_path) if data_path else None, config, progress=log)
    _emit_bench(report, output, as_json)
    failed = [row.target for row in report.results if row.status == "failed"]
    if failed:  # the others were measured and written: a partial result, exit code 3 as a failed guard
        fail(
            f"{len(failed)} of {len(report.results)} files could not be measured ({', '.join(failed)}): "
            "the table says why; the others were measured",
            code=3,
        )


def _bench_config(**values):
    from .runner.bench import BenchConfig

    return BenchConfig(**{key: value for key, value in values.items() if value is not None})


def _emit_bench(report, output, as_json) -> None:
    from .runner.bench import result_destination

    payload = report.model_dump_json(indent=2)
    # Beside the run, for `edgeresnet report` (one file's result merged into the run's); and
    # wherever --json-out says, as measured.
    beside, merged = result_destination(report)
    beside.write_text(merged.model_dump_json(indent=2) + "\n")
    log(f"wrote {beside}" + (f" ({len(merged.results)} files)" if merged is not report else ""))
    if output and Path(output).resolve() != beside.resolve():
        Path(output).write_text(payload + "\n")
        log(f"wrote {output}")
    if as_json:
        click.echo(payload)
    else:
        from rich.console import Console

        from .report import bench_table

        # Not squeezed into 80 when stdout is a file or a pipe, unless COLUMNS says how wide.
        Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120).print(bench_table(report))


@main.command("report")
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
    from .comparison import load_sources, markdown, verdicts, write_comparison

    rows, sources = load_sources(list(runs))
    notes = verdicts(rows, {(source.run, source.device): source.host for source in sources}, max_accuracy_drop)
    written = write_comparison(list(runs), rows, out, notes, sources)
    for path in written:
        log(f"wrote {path}")
    if as_json:
        _print_json(
            {
                "files": [str(p) for p in written],
                "rows": [vars(r) | {"samples_ms": None} for r in rows],
                "per_device": notes,
            }
        )
    else:
        click.echo(markdown(rows) + "".join(f"\n{note}" for note in notes) + ("\n" if notes else ""), nl=False)


@main.command("models")
@click.option("--family", type=click.Choice(["cifar", "imagenet"]), help="Only this family.")
@json_option
def models_command(family, as_json):
    """The model zoo: architectures MODEL files are detected as, or --arch can name."""
    from .models import family_of, list_models

    names = list_models(family)
    if as_json:
        _print_json([{"name": n, "family": family_of(n)} for n in names])
    else:
        for name in names:
            click.echo(f"{name:<20} {family_of(name)}")


@main.command("targets")
@json_option
def targets_command(as_json):
    """Export targets that --target accepts, and why a file of one cannot be measured on this host.

    Every target exports anywhere; Core ML files run only on macOS and TensorRT engines only on
    an NVIDIA GPU (a Jetson), where `bench` measures them.
    """
    from .export.targets import TARGETS
    from .runner.bench import cannot_run_here

    why = {runtime: cannot_run_here(runtime) for runtime in {t.runtime for t in TARGETS.values()}}
    if as_json:
        _print_json(
            [
                {
                    "name": t.name,
                    "runtime": t.runtime,
                    "precision": t.precision,
                    "description": t.description,
                    "runs_here": why[t.runtime] is None,
                    "why_not": why[t.runtime],
                }
                for t in TARGETS.values()
            ]
        )
    else:
        for target in TARGETS.values():
            click.echo(f"{target.name:<14} {target.description}")
        for runtime in sorted(r for r in why if why[r] is not None):  # every target exports; these don't run here
            names = ", ".join(t.name for t in TARGETS.values() if t.runtime == runtime)
            click.echo(f"\nnot measured on this host: {names}: {why[runtime]}")


@main.group("recipes")
def recipes_group():
    """Compression recipes: which stages run, in which order, with which settings, for which targets."""


@recipes_group.command("list")
@json_option
def recipes_list(as_json):
    """The builtin recipes."""
    from .recipes import builtin_recipes, load_recipe

    recipes = [load_recipe(name) for name in builtin_recipes()]
    if as_json:
        _print_json(
            [
                {
                    "name": r.name,
                    "stages": [s.name for s in r.stages],
                    "targets": list(r.targets),
                    "description": r.description,
                }
                for r in recipes
            ]
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("name", "stages", "targets", "description"):
        table.add_column(column)
    for r in recipes:
        table.add_row(
            r.name, " → ".join(s.name for s in r.stages) or "(export only)", ", ".join(r.targets), r.description
        )
    # Four columns with prose: not squeezed into 80 when stdout is a file or a pipe.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@recipes_group.command("show")
@click.argument("recipe", metavar="NAME_OR_PATH")
@click.option(
    "-o",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a setting, e.g. qat.epochs=2 or targets=[tflite-int8]; repeatable.",
)
@json_option
def recipes_show(recipe, overrides, as_json):
    """A recipe with every setting resolved, defaults included: a builtin NAME or a .yaml file."""
    from .recipes import load_recipe

    resolved = load_recipe(recipe, overrides)
    if as_json:
        _print_json(resolved.to_dict())
    else:
        click.echo(resolved.to_yaml(), nl=False)


if __name__ == "__main__":
    main()
