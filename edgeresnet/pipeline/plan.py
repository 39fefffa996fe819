"""Checks on what a compress run is asked to do, made before any work: which stages train,
for which int8 runtimes, on which data, and the accuracy the files are held to."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from pydantic import BaseModel, ConfigDict

from ..data import ImageDataset
from ..errors import EdgeResNetError
from ..export import Target
from ..recipes import Recipe
from ..stages.distill import DistillConfig
from ..stages.prune import PruneConfig
from ..stages.ptq import PtqConfig
from ..stages.qat import QatConfig
from ..stages.registry import STAGES


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    stages: list[tuple[str, BaseModel]]  # the training and pruning stages, in order
    schemes: list[str]  # the int8 runtimes qat trains for
    calibration: PtqConfig | None  # the ptq stage's settings


def check_plan(recipe: Recipe | None, targets: list[Target], train_data: ImageDataset | None) -> Plan:
    if recipe is None:
        return Plan(stages=[], schemes=[], calibration=None)
    stages = [(s.name, s.config) for s in recipe.stages if s.name != "ptq"]
    ptq = recipe.stage("ptq")
    schemes: list[str] = []
    qat = recipe.stage("qat")
    if qat is not None:
        wanted = [t.qat_scheme for t in targets if t.qat_scheme]
        if not wanted:
            raise EdgeResNetError(
                f"recipe {recipe.name} trains for int8 (qat) but no int8 target is asked for",
                "add an int8 --target such as tflite-int8, or use a recipe without qat",
            )
        scheme = cast(QatConfig, qat.config).scheme
        if scheme != "auto" and any(w != scheme for w in wanted):
            other = next(t.name for t in targets if (t.qat_scheme or scheme) != scheme)
            raise EdgeResNetError(
                f"recipe {recipe.name} trains qat for {scheme}'s int8 arithmetic, but {other} needs its own",
                "set qat.scheme to auto (-o qat.scheme=auto) to train one per int8 target, or drop that target",
            )
        schemes = list(dict.fromkeys(wanted))
    trains = [name for name, _ in stages if STAGES[name].trains]
    if trains and train_data is None:
        raise EdgeResNetError(
            f"recipe {recipe.name} trains ({', '.join(trains)}) and needs training images",
            "pass --train-data with an ImageFolder, .zip or .npz (not the evaluation data; unlabelled "
            "images only with alpha 1)",
        )
    return Plan(stages=stages, schemes=schemes, calibration=cast(PtqConfig, ptq.config) if ptq else None)


def accuracy_limit(asked: float | None, recipe: Recipe | None, data: ImageDataset, log) -> float | None:
    """The top-1 drop the run is held to: ``asked``, else the recipe's; none on unlabelled data.

    Without labels there is no top-1 to compare. Asked for explicitly, the guard that cannot
    judge is an error (the user expects it to hold); coming only from a recipe's default, it is
    skipped with a message, so that a builtin recipe still runs on unlabelled data.
    """
    if data.labelled:
        return asked if asked is not None else recipe.max_accuracy_drop if recipe else None
    if asked is not None:
        raise EdgeResNetError(
            f"--max-accuracy-drop compares top-1 against the input model, but {data.source} has no labels",
            "pass labelled --data (root/<class>/<image>), or drop "
            "--max-accuracy-drop and judge by the agreement column",
        )
    if recipe is not None and recipe.max_accuracy_drop is not None:
        log(
            f"recipe {recipe.name}'s max_accuracy_drop ({recipe.max_accuracy_drop:g} points) is not checked: "
            f"{Path(data.source).name} has no labels"
        )
    return None


def learns_from_labels(recipe: Recipe | None) -> bool:
    """Whether a stage of ``recipe`` reads --train-data's labels (when it has any)."""
    return recipe is not None and any(
        STAGES[stage.name].trains or _taylor_pruning(stage.config) for stage in recipe.stages
    )


def check_unlabelled_training(recipe: Recipe | None, train_data: ImageDataset | None) -> None:
    """Training stages on unlabelled --train-data: distill and qat learn from the teacher's outputs
    alone with alpha 1 (the labels' weight is 1 - alpha); taylor pruning needs labels."""
    if recipe is None or train_data is None or train_data.labelled:
        return
    hint = "pass --train-data with labels (root/<class>/<image>)"
    for stage in recipe.stages:
        if isinstance(stage.config, DistillConfig | QatConfig) and stage.config.alpha < 1:
            alpha = stage.config.alpha
            raise EdgeResNetError(
                f"{stage.name} weighs the labels by {1 - alpha:g} (alpha {alpha:g}), and {train_data.source} has no "
                f"labels",
                f"{hint}, or learn from the teacher alone with -o {stage.name}.alpha=1",
            )
        if _taylor_pruning(stage.config):
            raise EdgeResNetError(
                f"prune's taylor importance needs labels, and {train_data.source} has none",
                f"{hint}, or set -o prune.importance=l1 (or l2, bn)",
            )


def failure_reason(target: str, delta_top1: float | None, limit: float | None) -> str | None:
    """Why a file that lost more than ``limit`` points of top-1 failed; None when it did not."""
    if limit is None or delta_top1 is None or -delta_top1 <= limit + 1e-9:
        return None
    return (
        f"{target} lost {-delta_top1:.2f} points of top-1 against the input model, more than the "
        f"{limit:g} --max-accuracy-drop allows"
    )


def _taylor_pruning(config: BaseModel) -> bool:
    """Whether a stage's settings are pruning's by first-order Taylor importance, which reads labels."""
    return isinstance(config, PruneConfig) and config.importance == "taylor"
