"""The first stage: a checkpoint (or nn.Module) becomes a described Model."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..data import ImageDataset
from ..errors import DataError
from ..models.model import Model
from ..preprocess import Preprocess
from .checkpoint import read_model


def load_model(
    source: str | Path | nn.Module,
    *,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    preprocess: Preprocess | None = None,
    labels: tuple[str, ...] | None = None,
) -> Model:
    """``labels`` are the data's class names; labels the source carries (Hugging Face's
    id2label) take their place in the artifacts, and the data must have as many classes.

    Reads the model as ``load`` does and describes it: its architecture, classes and the
    preprocessing its inputs need, as a Model every stage takes.

    Args:
        source: an nn.Module, a checkpoint file or a folder (what ``load`` reads).
        arch: a zoo name such as "resnet56" or "resnet56:num_classes=100" instead of detection.
        trust_checkpoint: allow reading a file that unpickles arbitrary objects (trusted files only).
        preprocess: the input preprocessing; default: the source's (Hugging Face), else the
            family's (CIFAR or ImageNet).
        labels: the class names, one per output, in order.

    Example::

        model = edgeresnet.load_model("resnet20.th")
        print(model.arch, model.num_classes, model.preprocess.input_size)
    """
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


def as_model(source: str | Path | nn.Module | Model) -> Model:
    """What every public function that takes a model accepts: a Model as it is, or a path or an
    nn.Module read as ``load_model`` reads it."""
    return source if isinstance(source, Model) else load_model(source)


def check_labels(num_classes: int, labels: tuple[str, ...]) -> None:
    """The data's classes must be the model's outputs, one for one (an unlabelled data set,
    ``labels == ()``, has none to check)."""
    if len(labels) == 0:
        return
    if len(labels) != num_classes:
        raise DataError(
            f"the model has {num_classes} outputs but the data has {len(labels)} classes",
            "use data with one folder per class the model predicts, or a model trained on these classes",
        )


def fit_labels(num_classes: int, data: ImageDataset, log=lambda message: None) -> ImageDataset:
    """``data`` as the model reads it: labelled when its classes are the model's, unlabelled when it has none.

    One folder of images (``calib/*.jpg``, as ``zip -r calib.zip calib`` makes) is a one-class
    ImageFolder to torchvision; for a model of several classes it cannot be one (the counts
    differ), so it is read as what it is, a folder of unlabelled images. Any other count that
    differs from the model's is an error.
    """
    if not data.labelled:
        return data
    if len(data.classes) == 1 and num_classes > 1:
        log(
            f"{Path(data.source).name} holds one folder of images ({data.classes[0]}/) and the model predicts "
            f"{num_classes} classes: reading them as unlabelled images (no accuracy, only fidelity and latency)"
        )
        return data.unlabelled()
    check_labels(num_classes, data.classes)
    return data
