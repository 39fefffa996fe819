"""``edgeresnet.compress``: what `edgeresnet compress` and `edgeresnet export` do, as a function.

Everything a typo can get wrong (the recipe, an override, a target, the model's path, an
occupied --out) is checked before torch and the converters load, so that it fails at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EdgeResNetError

if TYPE_CHECKING:
    from ..data import ImageDataset
    from ..export.targets import Target
    from ..recipes import Recipe
    from ..run_report import RunReport
    from ..training.config import Execution
    from .inputs import ModelSource
    from .run import CompressOptions


def compress(
    model: ModelSource | None = None,
    data: ImageDataset | str | Path | None = None,
    targets: str | Sequence[str | Target] = (),
    out: str | Path | None = None,
    *,
    recipe: Recipe | str | Path | None = None,
    overrides: Sequence[str] = (),
    train_data: ImageDataset | str | Path | None = None,
    options: CompressOptions | dict | None = None,
    overwrite: bool = False,
    resume: bool = False,
    max_accuracy_drop: float | None = None,
    execution: Execution | None = None,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    preprocess: dict | None = None,
    limit: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> RunReport | None:
    """Run a recipe's stages on a model, export it to each target, verify and measure every file.

    Args:
        model: a Model, a checkpoint path or an nn.Module; None: the embedded demo ResNet-20
            (with its 300 CIFAR-10 images as the default ``data``).
        data: the evaluation images (a data set or its path; labelled or not). None: the files are
            verified and timed on the embedded sample images, when nothing needs calibration.
        targets: target names ("tflite-int8", "tflite-int8,onnx") or Target values; default: the recipe's.
        out: the run directory; default runs/<arch>-<time>.
        recipe: a Recipe, a builtin recipe's name or a YAML file; None: export only.
        overrides: recipe settings to change, as "stage.key=value" (what -o takes).
        train_data: what training stages learn on, pruning ranks channels on and int8 calibrates on.
        options: calibration, export and measurement settings (CompressOptions, or its fields).
        overwrite / resume: replace an existing run at ``out``, or continue an interrupted one.
        max_accuracy_drop: fail the run (AccuracyDropError, files kept) when a file loses more
            top-1 points than this; default: the recipe's.
        execution: the device and data loading of the training stages.
        arch, trust_checkpoint, preprocess: how to read ``model`` (``preprocess``: overrides by
            name: input_size, resize, mean, std, channel_order).
        limit, seed: evaluate a seeded subset of ``data`` of this size.
        log: called with each progress line.

    Returns the run's report (also in ``out``/report.json; ``report.directory`` is ``out``), or
    None on a torchrun process other than rank 0.

    Example::

        report = edgeresnet.compress("resnet20.th", "cifar10/test.zip", "tflite-int8,openvino-int8",
                                     recipe="ptq-int8", train_data="cifar10/train.zip", out="runs/r20")
        print([(row.target, row.top1) for row in report.results])
    """
    from ..export.targets import check_calibration_source
    from ..rundir import check_output_dir
    from .checks import check_model_path

    loaded_recipe = _recipe(recipe, overrides)
    if not targets and loaded_recipe is not None:
        targets = loaded_recipe.targets
    target_list = _targets(targets)
    check_model_path(model)
    if data is None and model is not None:  # int8 needs calibration images
        check_calibration_source(target_list, train_data is not None)
    if resume and out is None:
        raise EdgeResNetError("--resume needs the --out of the interrupted run", "pass the same --out as before")
    if out is not None and not resume:
        check_output_dir(Path(out), overwrite)
    # The slow part, once every input has been checked: torch, the model, the data, the run.
    from .. import distributed
    from ..data import ImageDataset, open_dataset
    from ..training.config import Execution
    from .inputs import embedded_samples, in_model_order, model_and_data
    from .run import CompressOptions, run_compress

    execution = execution or Execution()
    distributed.check_device(execution.device)  # before the slow loading
    if distributed.launched_by_torchrun() and out is None:
        raise EdgeResNetError(
            "under torchrun, compress needs --out (every process must name the same run)", "pass --out DIR"
        )
    loaded, dataset = model_and_data(
        model, data, arch=arch, trust_checkpoint=trust_checkpoint, preprocess=preprocess, need_data=False, log=log
    )
    if dataset is None:
        dataset = embedded_samples(log)
    dataset = dataset.subset(limit, seed=seed)
    if train_data is not None:
        train_data = in_model_order(
            train_data if isinstance(train_data, ImageDataset) else open_dataset(train_data), loaded
        )
    out = Path(out) if out is not None else Path("runs") / f"{loaded.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    return run_compress(
        loaded,
        dataset,
        target_list,
        out,
        recipe=loaded_recipe,
        train_data=train_data,
        options=CompressOptions.model_validate(options or {}),
        overwrite=overwrite,
        resume=resume,
        max_accuracy_drop=max_accuracy_drop,
        execution=execution,
        log=log,
    )


def _recipe(recipe, overrides: Sequence[str]):
    if recipe is None:
        if overrides:
            raise EdgeResNetError(
                "-o overrides a recipe setting, but no --recipe is given", "pass --recipe, e.g. --recipe qat-int8"
            )
        return None
    from ..recipes import Recipe, load_recipe

    if isinstance(recipe, Recipe):
        if overrides:
            raise EdgeResNetError("overrides change a recipe as it is read", "pass the recipe's name or path with them")
        return recipe
    return load_recipe(str(recipe), overrides)


def _targets(targets) -> list:
    from ..export.targets import Target, parse_targets

    if isinstance(targets, str):
        return parse_targets([targets])
    if targets and all(isinstance(t, Target) for t in targets):
        return list(targets)
    return parse_targets([str(t) if not isinstance(t, Target) else t.name for t in targets])
