"""The flags: the same flag means the same thing in every command."""

from __future__ import annotations

import os
from pathlib import Path

import click

model_argument = click.argument("model", required=False, metavar="[MODEL]")
arch_option = click.option("--arch", help="Architecture name (e.g. resnet56); overrides detection from the weights.")
trust_option = click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Allow a checkpoint that needs full unpickling (it can run code: only for files you trust).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")


def resolve_data_option(ctx, param, value: Path | None) -> Path | None:
    """A data path as given; ``samples`` names the embedded sample images (data.resolve_data_path)."""
    from ..data import resolve_data_path

    return None if value is None else resolve_data_path(value)


data_option = click.option(
    "--data",
    type=click.Path(path_type=Path),
    callback=resolve_data_option,
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


def train_data_option(help_text: str):
    return click.option("--train-data", type=click.Path(path_type=Path), callback=resolve_data_option, help=help_text)


def max_drop_option(default_text: str):
    return click.option(
        "--max-accuracy-drop",
        type=click.FloatRange(0, 100),
        metavar="POINTS",
        help="Fail the run (exit code 3, artifacts kept and marked failed) when a file loses more "
        f"top-1 points than this against the input model [default: {default_text}].",
    )


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


def stage_config(cls, **values):
    """A stage's config from flags; a value out of range is one line naming the flag."""
    from pydantic import ValidationError

    from ..recipes import invalid

    try:
        return cls(**{key: value for key, value in values.items() if value is not None})
    except ValidationError as error:
        raise invalid(
            error,
            lambda loc: "--" + str(loc[0]).replace("_", "-") if loc else "the options",
            f"see `edgeresnet {click.get_current_context().info_name} --help`",
        ) from None
