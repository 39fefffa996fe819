"""The first stage: a checkpoint (or nn.Module) becomes a described Model."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import DataError
from ..loading import load_with_spec
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
    module, spec = load_with_spec(source, arch, trust_checkpoint=trust_checkpoint)
    if labels is not None:
        check_labels(spec.num_classes, labels)
    return Model(
        module=module,
        arch=spec.name or "resnet",
        family=spec.family,
        preprocess=preprocess or Preprocess.for_family(spec.family),
        num_classes=spec.num_classes,
        labels=labels,
        source=str(source) if not isinstance(source, nn.Module) else "<module>",
        options=spec.options,
        plan=spec.plan,
    )


def check_labels(num_classes: int, labels: tuple[str, ...]) -> None:
    """The data's classes must be the model's outputs, one for one."""
    if len(labels) != num_classes:
        raise DataError(
            f"the model has {num_classes} outputs but the data has {len(labels)} classes",
            "use data with one folder per class the model predicts, or a model trained on these classes",
        )
