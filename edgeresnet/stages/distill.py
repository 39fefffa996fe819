"""The distill stage: the original FP32 model teaches a (pruned) student to recover accuracy.

Pruning costs accuracy that fine-tuning on labels alone recovers slowly; the teacher's
full output distribution says far more per image (which wrong classes are close), so the
student is trained on a mix of the teacher's softened outputs and the labels (Hinton et
al. 2015), optionally also matching each residual stage's output through a learned 1x1
adapter (FitNets, Romero et al. 2015). Training runs on a copy: the student and the
teacher given are left as they were, and the result is the student with trained weights.
With a ``checkpoint_dir`` a killed run continues where it stopped (see training/loop.py).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn

from .. import distributed
from ..data import ImageDataset
from ..errors import DataError, EdgeResNetError
from ..evaluate import evaluate
from ..loading import as_model, check_labels
from ..models.model import Model
from ..preprocess import Preprocess
from ..training.config import Execution, TrainConfig
from ..training.data import TrainBatches
from ..training.loop import EpochRecord, fit
from ..training.losses import FeatureDistiller, distillation_objective


class DistillConfig(TrainConfig):
    # loss = alpha * KL(student/T || teacher/T) * T^2 + (1 - alpha) * cross-entropy (Hinton et al. 2015)
    alpha: float = Field(default=0.9, ge=0, le=1)
    temperature: float = Field(default=4.0, gt=0, le=100)
    # Weight of the feature term: mean squared error between each stage's output, the
    # student's through a learned 1x1 adapter to the teacher's width (FitNets); 0 turns it off.
    feature_weight: float = Field(default=0.0, ge=0, le=1000)


def distill(
    student: Model,
    teacher: Model,
    config: DistillConfig,
    data: ImageDataset,
    *,
    checkpoint_dir: Path | None = None,
    validation: ImageDataset | None = None,
    log: Callable[[str], None] = lambda message: None,
    execution: Execution = Execution(),
) -> tuple[Model, list[EpochRecord]]:
    """``student`` trained to imitate ``teacher`` on ``data``, and the history of its epochs
    (with top-1 on ``validation`` after each one, when given). Each model is a Model, a path or
    an nn.Module. Under torchrun, every process calls it (see edgeresnet/distributed.py).

    Args:
        student: the model to train (a pruned copy of the teacher, say); it is not changed.
        teacher: the model it learns from: the same classes and preprocessing.
        config: epochs, optimiser and schedule, and the loss: ``alpha`` (the teacher's share
            against the labels), ``temperature`` and ``feature_weight`` (FitNets; 0: off).
        data: the training images; unlabelled ones only with ``alpha=1``.
        checkpoint_dir: where training checkpoints go, and where a killed run resumes from.
        validation: labelled images to measure top-1 on after each epoch.
        log: called with each progress line.
        execution: the device and data loading (not the result).

    Example::

        teacher = edgeresnet.load_model("resnet56.th")
        train = edgeresnet.open_dataset("cifar10/train.zip")
        pruned = edgeresnet.prune(teacher, edgeresnet.PruneConfig(macs=2.0), data=train)
        student, history = edgeresnet.distill(pruned, teacher, edgeresnet.DistillConfig(epochs=10), train)
        print(history[-1].loss)
    """
    student, teacher = as_model(student), as_model(teacher)
    _check_pair(student, teacher)
    if not data.labelled and config.alpha < 1:  # alpha 1 learns the teacher's outputs alone: no labels needed
        raise EdgeResNetError(
            f"distill weighs the labels by {1 - config.alpha:g} (alpha {config.alpha:g}), and {data.source} has no "
            "labels",
            "pass --train-data with labels (root/<class>/<image>), or learn from the teacher alone with "
            "-o distill.alpha=1",
        )
    check_labels(student.num_classes, data.classes)
    if validation is not None:
        check_labels(student.num_classes, validation.classes)
    batches = TrainBatches(data, student.preprocess, config, execution=execution)
    module = student.copy_module()
    # A private, frozen copy: hooks and eval mode must not touch the caller's teacher.
    teacher_module = copy.deepcopy(teacher.module).eval().requires_grad_(False)
    features = None
    if config.feature_weight > 0:
        features = FeatureDistiller(module, teacher_module, student.preprocess.input_size, seed=config.seed)

    teacher_module.to(distributed.training_device(execution.device))  # fit moves the student
    feature_term = None if features is None else (lambda: config.feature_weight * features.loss())
    loss_fn = distillation_objective(teacher_module, config.alpha, config.temperature, feature_term)

    validate = None if validation is None else functools.partial(_top1, validation, student.preprocess)
    try:
        history = fit(
            module,
            batches,
            config,
            loss_fn,
            extra_parameters=[] if features is None else [features],
            checkpoint_dir=checkpoint_dir,
            validate=validate,
            progress="Distilling",
            log=log,
            execution=execution,
        )
    finally:
        if features is not None:
            features.remove()  # the hooks hold the student copy that is returned
    return student.replace(module=module.eval()), history


def _check_pair(student: Model, teacher: Model) -> None:
    if student.num_classes != teacher.num_classes:
        raise EdgeResNetError(
            f"the student has {student.num_classes} outputs and the teacher {teacher.num_classes}",
            "distil into a model of the teacher's classes (a pruned copy of it)",
        )
    # Both see the same input tensor, so they must expect the same size and normalisation.
    if student.preprocess != teacher.preprocess:
        raise EdgeResNetError(
            f"the student takes {_describe(student)} and the teacher {_describe(teacher)}",
            "distil between models with the same preprocessing (a pruned copy of the teacher)",
        )


def _describe(model: Model) -> str:
    spec = model.preprocess
    return f"{spec.input_size}x{spec.input_size} {spec.channel_order} inputs (mean {spec.mean}, std {spec.std})"


def _top1(data: ImageDataset, spec: Preprocess, module: nn.Module) -> float:
    """Top-1 percent of ``module`` on ``data``, in eval mode (the loop restores the modes)."""
    module.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()

    top1 = evaluate(predict, data, spec, progress=None).top1
    if top1 is None:
        raise DataError(f"validation measures top-1, and {data.source} has no labels", "pass labelled validation data")
    return top1
