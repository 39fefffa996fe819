"""What a run reads before it starts: the model, the data, and the embedded images used when
no data is given."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from ..data import ImageDataset, open_dataset
from ..errors import EdgeResNetError
from ..models.model import Model
from ..preprocess import Preprocess
from .checks import check_model_path

# What every public function that takes a model accepts.
ModelSource = Model | str | Path | nn.Module


def embedded_samples(log: Callable[[str], None] = lambda message: None) -> ImageDataset:
    """The embedded CIFAR-10 sample images, unlabelled: what files are verified and timed on without
    --data. Each model's own preprocessing resizes them to its input (and to gray for a 1-channel one)."""
    from ..assets import DEMO_DATA

    data = open_dataset(DEMO_DATA).unlabelled()
    log(
        f"no --data given: verifying and timing on the {len(data)} embedded sample images of {DEMO_DATA.name}, "
        "unlabelled and resized by the model's preprocessing (no accuracy: pass --data for it)"
    )
    return data


def describe_data(data: ImageDataset, fingerprint: str) -> dict:
    """What report.json and every manifest record of the images the files were verified, evaluated and timed on."""
    from ..assets import DEMO_DATA

    described = {
        "name": Path(data.source).name,
        "source": data.source,
        "samples": len(data),
        "fingerprint": fingerprint,
        "classes": list(data.classes),
        "labelled": data.labelled,
    }
    if not data.labelled and Path(data.source) == DEMO_DATA:
        described["embedded"] = True  # no --data: the embedded sample images, resized by the model's preprocessing
    return described


def model_and_data(
    model: ModelSource | None,
    data: ImageDataset | str | Path | None,
    *,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    preprocess: dict | None = None,
    need_data: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[Model, ImageDataset | None]:
    """The model (the embedded demo ResNet-20 when none is given, with its images as the default
    data) and the data labelled as the model reads it: its classes in the model's label order, or
    no labels at all (a folder of unlabelled images). ``preprocess``: overrides of the model's
    preprocessing by name (input_size, resize, mean, std, channel_order; None keeps the value)."""
    check_model_path(model)
    from ..assets import DEMO_DATA, DEMO_MODEL

    if model is None:
        model = DEMO_MODEL
        data = data or DEMO_DATA
        named = data.source if isinstance(data, ImageDataset) else data
        log(f"no MODEL given: using the embedded demo ResNet-20 and {Path(named).name}")
    if data is None and need_data:
        raise EdgeResNetError(
            "no evaluation data given", "pass --data with an ImageFolder directory, a .zip of one, or an .npz"
        )
    dataset = data if isinstance(data, ImageDataset) or data is None else open_dataset(data)
    loaded = _load(model, arch, trust_checkpoint, preprocess or {})
    if dataset is None:
        return loaded, None
    from ..loading import fit_labels

    dataset = fit_labels(loaded.num_classes, dataset, log)  # the class count, or no labels at all
    if dataset.labelled and not loaded.labels:
        loaded = loaded.replace(labels=dataset.classes)
    return loaded, in_model_order(dataset, loaded)


def in_model_order(data: ImageDataset, model: Model) -> ImageDataset:
    """Data labelled in the model's own label order (a Hugging Face id2label), not the folders'
    alphabetical one, when both name the same classes."""
    if model.labels and sorted(model.labels) == sorted(data.classes):
        return data.in_class_order(model.labels)
    return data


def require_labels(dataset: ImageDataset, what: str) -> None:
    if not dataset.labelled:
        raise EdgeResNetError(
            f"{what} needs labels, and {dataset.source} has none (no class folders)",
            "pass an ImageFolder directory (root/<class>/<image>), a .zip of one, or an .npz with "
            "'images' and 'labels'; for unlabelled images use export or compress (agreement and "
            "latency) or bench",
        )


def _load(model: ModelSource, arch: str | None, trust: bool, overrides: dict) -> Model:
    from ..loading import load_model

    loaded = model if isinstance(model, Model) else load_model(model, arch=arch, trust_checkpoint=trust)
    if any(value is not None for value in overrides.values()):
        loaded = loaded.replace(preprocess=override_preprocess(loaded.preprocess, **overrides))
    return loaded


def override_preprocess(
    spec: Preprocess,
    input_size: int | None = None,
    resize: str | int | None = None,
    mean: str | None = None,
    std: str | None = None,
    channel_order: str | None = None,
) -> Preprocess:
    """``spec`` with the flags' values (as typed: "0.5,0.5,0.5", "none"); a wrong value is one line."""
    from pydantic import ValidationError

    changes: dict[str, object] = {}
    if input_size is not None:
        changes["input_size"] = input_size
    if resize is not None:
        changes["resize"] = None if str(resize).lower() == "none" else number(str(resize), int, "--resize")
    for name, value in (("mean", mean), ("std", std)):
        if value is not None:
            parts = [number(p, float, f"--{name}") for p in value.split(",")]
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
        from ..recipes import invalid

        raise invalid(error, "preprocessing", "check --input-size, --resize, --mean and --std") from None


def number(text: str, kind: type, flag: str):
    """``text`` as an int or float, or one line naming the flag it came from."""
    try:
        return kind(text)
    except ValueError:
        raise EdgeResNetError(f"{flag} expects a number, got {text!r}") from None
