"""A Hugging Face model folder (``save_pretrained``): weights, labels and preprocessing.

Only files are read (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``,
``preprocessor_config.json``); transformers is not needed and nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchitectureError, CheckpointError
from ..preprocess import Preprocess

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HubFolder:
    weights: Path
    config: dict[str, Any]
    labels: tuple[str, ...] | None
    preprocess: Preprocess | None


def is_hub_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def read_folder(path: Path) -> HubFolder:
    config = _json(path / "config.json")
    model_type = config.get("model_type")
    if model_type != "resnet":
        raise ArchitectureError(
            f"{path} holds a Hugging Face {model_type or 'unknown'} model, not a ResNet",
            "export a ResNetForImageClassification (model_type 'resnet')",
        )
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        raise CheckpointError(
            f"{path} has a config.json but no weights: looked for {', '.join(WEIGHT_FILES)}",
            "save the model with save_pretrained() into this folder",
        )
    return HubFolder(weights, config, labels_of(config), _preprocess(path / "preprocessor_config.json"))


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}", "save the model again with save_pretrained()") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} is not a JSON object", "save the model again with save_pretrained()")
    return value


def labels_of(config: dict[str, Any]) -> tuple[str, ...] | None:
    """``id2label`` in class order, unless it holds only transformers' LABEL_0.. placeholders."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        ordered = sorted((int(k), str(v)) for k, v in id2label.items())
    except ValueError:
        raise CheckpointError(
            f"config.json's id2label has keys that are not class numbers: {list(id2label)[:3]}",
            "fix id2label in config.json",
        ) from None
    if [i for i, _ in ordered] != list(range(len(ordered))):
        raise CheckpointError(
            "config.json's id2label does not number its classes 0..N-1", "fix id2label in config.json"
        )
    labels = tuple(label for _, label in ordered)
    return None if all(label == f"LABEL_{i}" for i, label in enumerate(labels)) else labels


def _preprocess(path: Path) -> Preprocess | None:
    """The image processor's size, crop and normalisation (ConvNext's crop_pct or a fixed size)."""
    if not path.is_file():
        return None
    config = _json(path)
    size = config.get("size", config.get("crop_size"))
    mean, std = config.get("image_mean"), config.get("image_std")
    fields: dict[str, Any] = {}
    if isinstance(size, dict) and "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        fields.update(input_size=edge, resize=int(edge / config.get("crop_pct", 0.875)))
    elif isinstance(size, dict) and size.get("height") == size.get("width") and size.get("height"):
        fields.update(input_size=int(size["height"]), resize=None)
    elif isinstance(size, int):
        fields.update(input_size=size, resize=None)
    else:
        return None
    if config.get("do_normalize", True) and mean and std:
        fields.update(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))
    elif not config.get("do_normalize", True):
        fields.update(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    try:
        return Preprocess(**fields)
    except ValueError as error:
        raise CheckpointError(
            f"cannot use {path}: {str(error).splitlines()[0]}", "pass --input-size, --resize, --mean and --std instead"
        ) from None
