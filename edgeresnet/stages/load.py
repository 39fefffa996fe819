"""The first stage: a checkpoint (or nn.Module) becomes a described Model."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import DataError
from ..loading import read_model
from ..model import Model
from ..preprocess import Preprocess


def load_model(
    source: str | Path | nn.Module,
    *,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    preprocess: Preprocess | None = None,
    labels: tuple[str, ...] | None = None,
) -> Model:
    """``labels`` are the data's class names; labels the source carries (Hugging Face's
    id2label) take their place in the artifacts, and the data must have as many classes."""
    intake = read_model(source, arch, trust_checkpoint=trust_checkpoint)
    spec = intake.spec
    if labels is not None:
        check_labels(intake.num_classes, labels)
    preprocess = preprocess or intake.preprocess or Preprocess.for_family(intake.family)
    if intake.in_chans == 1 and preprocess.channel_order != "L":
        preprocess = preprocess.grayscale()
    return Model(
        module=intake.module,
        arch=(spec.name or "resnet") if spec is not None else "module",
        family=intake.family,
        preprocess=preprocess,
        num_classes=intake.num_classes,
        labels=intake.labels or labels,
        source=str(source) if not isinstance(source, nn.Module) else "<module>",
        options=spec.options if spec is not None else {},
        plan=spec.plan if spec is not None else None,
        in_chans=intake.in_chans,
        layout=intake.layout,
    )


def as_model(source: "str | Path | nn.Module | Model") -> Model:
    """What every public function that takes a model accepts: a Model as it is, or a path or an
    nn.Module read as ``load_model`` reads it."""
    return source if isinstance(source, Model) else load_model(source)


def check_labels(num_classes: int, labels: tuple[str, ...]) -> None:
    """The data's classes must be the model's outputs, one for one."""
    if len(labels) != num_classes:
        raise DataError(
            f"the model has {num_classes} outputs but the data has {len(labels)} classes",
            "use data with one folder per class the model predicts, or a model trained on these classes",
        )
