"""The qat stage: fine-tune with fake quantization that reproduces a target's int8 arithmetic.

    float model -> prepare (fake quantization, ranges from calibration images)
        -> train (distilled from the float model; batch norm frozen late) -> finish

The result's ``module`` is the simulator: its predictions are what the int8 file of its
scheme must reproduce, and export checks that they do. ``qat.float_module`` is the same
network as plain float layers (for TFLite: batch norm folded, weights on the int8 grid),
which converters read. Schemes live in ``edgeresnet/quantization/``: ``tflite`` is ours,
``openvino`` and ``coreml`` wrap NNCF and coremltools.optimize.torch.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from .. import distributed
from ..data import ImageDataset, normalize, sample_pixels
from ..errors import EdgeResNetError
from ..loading import as_model, check_labels
from ..models.model import Model, QatState
from ..training.config import Execution, TrainConfig
from ..training.data import TrainBatches
from ..training.loop import EpochRecord, fit
from ..training.losses import distillation_objective

Scheme = Literal["tflite", "openvino", "coreml"]
# The scheme each int8 target needs, for `scheme: auto`: its Target.qat_scheme.


class QatConfig(TrainConfig):
    epochs: int = Field(default=3, ge=1, le=1000)
    lr: float = Field(default=0.002, gt=0, le=10)
    weight_decay: float = Field(default=1e-4, ge=0, le=1)
    # Whose integer arithmetic to simulate; "auto" trains one model per int8 target asked for.
    scheme: Literal["auto", "tflite", "openvino", "coreml"] = "auto"
    # Batch-norm statistics stop updating (and fold for good) after this fraction of the steps.
    freeze_bn_after: float = Field(default=0.5, ge=0, le=1)
    calibration_images: int = Field(default=512, ge=1, le=100_000)  # initial activation ranges
    # Distillation from the FP32 model, as in the distill stage; alpha 0 trains on labels alone.
    alpha: float = Field(default=0.5, ge=0, le=1)
    temperature: float = Field(default=4.0, gt=0, le=100)


def qat(
    model: Model,
    config: QatConfig,
    data: ImageDataset,
    *,
    scheme: Scheme | None = None,
    teacher: Model | None = None,
    checkpoint_dir: Path | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    log: Callable[[str], None] = lambda message: None,
    execution: Execution = Execution(),
) -> tuple[Model, list[EpochRecord]]:
    """``model`` (a Model, a path or an nn.Module) trained for ``scheme``'s int8 arithmetic on
    ``data`` (``config.scheme`` unless it is "auto"), distilled from ``teacher`` (default:
    ``model`` itself, in float).

    Args:
        model: the float model (not one that has been through qat already); it is not changed.
        config: epochs, optimiser, ``scheme``, ``freeze_bn_after``, ``calibration_images`` (the
            initial activation ranges) and the distillation's ``alpha`` and ``temperature``.
        data: the training images; unlabelled ones only with ``alpha=1``.
        scheme: "tflite", "openvino" or "coreml": used when ``config.scheme`` is "auto".
        teacher: the model distilled from.
        checkpoint_dir: where training checkpoints go, and where a killed run resumes from.
        validate: called with the module after each epoch; returns the top-1 to record.
        log: called with each progress line.
        execution: the device and data loading (not the result).

    Returns the simulator (``qat`` holds its scheme and float network, which export converts)
    and the history of its epochs.

    Example::

        model = edgeresnet.load_model("resnet20.th")
        train = edgeresnet.open_dataset("cifar10/train.zip")
        int8_model, history = edgeresnet.qat(model, edgeresnet.QatConfig(epochs=2), train, scheme="tflite")
    """
    model = as_model(model)
    teacher = as_model(teacher) if teacher is not None else None
    scheme = resolve_scheme(config, scheme)
    if model.qat is not None:
        raise EdgeResNetError(
            "this model has been through quantization-aware training already", "run qat on the float model"
        )
    if not data.labelled and config.alpha < 1:  # alpha 1 learns the teacher's outputs alone: no labels needed
        raise EdgeResNetError(
            f"qat weighs the labels by {1 - config.alpha:g} (alpha {config.alpha:g}), and {data.source} has no labels",
            "pass --train-data with labels (root/<class>/<image>), or learn from the float model alone "
            "with -o qat.alpha=1",
        )
    check_labels(model.num_classes, data.classes)
    simulator = importlib.import_module(f"edgeresnet.quantization.{scheme}")
    batches = TrainBatches(data, model.preprocess, config, execution=execution)
    pixels = sample_pixels(data, model.preprocess, min(config.calibration_images, len(data)), seed=config.seed)
    module = simulator.prepare_for_training(model.module, torch.from_numpy(normalize(pixels, model.preprocess)))
    teacher_module = copy.deepcopy((teacher or model).module).eval().requires_grad_(False)
    teacher_module.to(distributed.training_device(execution.device))  # fit moves the student
    freeze_at = None

    loss_fn = distillation_objective(teacher_module, config.alpha, config.temperature)

    def on_step(step: int, total: int) -> None:
        nonlocal freeze_at
        # Called before every step, also the first after a resume: the frozen state follows the step.
        if step >= int(config.freeze_bn_after * total) and freeze_at is None:
            freeze_at = step
            simulator.freeze_batch_norm(module)

    history = fit(
        module,
        batches,
        config,
        loss_fn,
        checkpoint_dir=checkpoint_dir,
        on_step=on_step,
        validate=validate,
        progress=f"QAT ({scheme})",
        log=log,
        execution=execution,
    )
    if freeze_at is None:  # a run resumed after its last epoch takes no step
        simulator.freeze_batch_norm(module)
    qat_module, float_module = simulator.finish(module, model.module)
    return model.replace(module=qat_module, qat=QatState(scheme, float_module)), history


def resolve_scheme(config: QatConfig, scheme: Scheme | None) -> Scheme:
    if config.scheme != "auto":
        return config.scheme
    if scheme is None:
        raise EdgeResNetError(
            "qat needs to know whose int8 arithmetic to simulate",
            "set its scheme (tflite, openvino or coreml), or give compress an int8 --target",
        )
    return scheme
