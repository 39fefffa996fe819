"""Source layouts: how other projects name a ResNet's weights, renamed into the zoo's names.

Each adapter recognises its layout by its keys alone and renames them into torchvision's
and timm's names (He et al.'s CIFAR ResNets keep theirs: the zoo has their class), so
that one detector (``models.detect``) reads the structure of them all:

| layout        | written by                                    | recognised by                      |
| ------------- | --------------------------------------------- | ---------------------------------- |
| huggingface   | transformers ``ResNetForImageClassification``  | ``embedder.embedder.convolution``  |
| pytorch-cifar | kuangliu/pytorch-cifar ``ResNet``, ``PreActResNet`` | ``shortcut``, ``linear``, not He et al.'s |
| he-cifar      | He et al. 2016 CIFAR ResNets (Idelbayev)      | ``linear``, 3 stages               |
| timm          | timm ``resnet*d``, ``seresnet*``, ``ecaresnet*`` | deep stem, ``se``, avg-pool shortcut |
| torchvision   | torchvision and timm's plain ResNets          | ``conv1``, ``layerN``, ``fc``      |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

_HF_RULES = (  # transformers' ResNet names -> torchvision's
    (r"^embedder\.embedder\.convolution\.", "conv1."),
    (r"^embedder\.embedder\.normalization\.", "bn1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.", "layer{s}.{1}.downsample.0."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.", "layer{s}.{1}.downsample.1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.", "layer{s}.{1}.conv{k}."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.", "layer{s}.{1}.bn{k}."),
    (r"^classifier\.1\.", "fc."),
)


@dataclass(frozen=True)
class Canonical:
    """Weights renamed into the zoo's names, and what their layout says beyond the weights."""

    layout: str
    state_dict: dict[str, Tensor]
    known: dict[str, Any] = field(default_factory=dict)  # Layout fields the weights cannot show


def candidates(state_dict: Mapping[str, Tensor], config: Mapping[str, Any] | None = None) -> list[Canonical]:
    """The layouts the keys may be in, most likely first, each renamed into the zoo's names;
    ``config`` is a Hugging Face config.json, if any."""
    keys = list(state_dict)
    if any(k.startswith(("resnet.embedder.", "embedder.embedder.")) for k in keys):
        return [_from_huggingface(state_dict, config or {})]
    if "linear.weight" in state_dict:
        renamed = {_pytorch_cifar_name(k): v for k, v in state_dict.items()}
        cifar = [Canonical("he-cifar", dict(state_dict)), Canonical("pytorch-cifar", renamed)]
        return cifar if _is_he_cifar(state_dict) else cifar[::-1]
    timm = any(k.startswith("conv1.0.") or ".se." in k or re.search(r"\.downsample\.2\.", k) for k in keys)
    return [Canonical("timm" if timm else "torchvision", dict(state_dict))]


def _pytorch_cifar_name(key: str) -> str:
    key = re.sub(r"\.shortcut\.", ".downsample.", key)
    return "fc." + key[len("linear.") :] if key.startswith("linear.") else key


def _is_he_cifar(state_dict: Mapping[str, Tensor]) -> bool:
    """He et al.'s CIFAR ResNets: three stages of basic blocks after a normed 3x3 stem."""
    stages = {int(m[1]) for k in state_dict if (m := re.match(r"^layer(\d+)\.", k))}
    return (
        stages == {1, 2, 3} and "bn1.weight" in state_dict and not any(k.endswith(".conv3.weight") for k in state_dict)
    )


def _from_huggingface(state_dict: Mapping[str, Tensor], config: Mapping[str, Any]) -> Canonical:
    renamed = {}
    for key, value in state_dict.items():
        name = key.removeprefix("resnet.")
        for pattern, replacement in _HF_RULES:
            match = re.match(pattern, name)
            if match:
                groups = match.groups()
                new = replacement.format(
                    *groups, s=int(groups[0]) + 1 if groups else 0, k=int(groups[2]) + 1 if len(groups) > 2 else 0
                )
                name = new + name[match.end() :]
                break
        renamed[name] = value
    known: dict[str, Any] = {}
    if config.get("downsample_in_bottleneck") and config.get("layer_type", "bottleneck") == "bottleneck":
        known["stride_in_1x1"] = True
    if config.get("downsample_in_first_stage"):
        known["first_stride"] = 2
    return Canonical("huggingface", renamed, known)
