"""A ResNet described by its structure (``ArchSpec``), and how it reads to a person.

A spec is what ``detect`` (detect.py) reads from weights, what a manifest and a channel
plan store as JSON, and what builds the module again: one of the zoo's two classes, or a
``GeneralResNet`` for any other layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.models.cifar import CifarResNet
from edgeresnet.models.general import GeneralResNet, Layout
from edgeresnet.models.registry import Family, defaults
from edgeresnet.models.resnet import BasicBlock, Bottleneck, ResNet

if TYPE_CHECKING:
    from edgeresnet.models.plan import ChannelPlan

# (head, stem kernel, stages) of each family's layout.
FAMILY_LAYOUT = {"imagenet": ("fc", 7, 4), "cifar": ("linear", 3, 3)}


@dataclass(frozen=True)
class ArchSpec:
    """A ResNet described by structure; ``name`` is its zoo name when it has one."""

    family: Family
    block: Literal["basic", "bottleneck"]
    layers: tuple[int, ...]  # blocks per stage
    width: int  # stem channels = first stage's planes (64 torchvision, 16 CIFAR)
    groups: int  # of the bottleneck's 3x3 conv (ResNeXt: 32)
    width_per_group: int  # torchvision's base_width (wide ResNets: 128)
    shortcut: Literal["A", "B", "downsample"]  # CIFAR pad / CIFAR projection / torchvision
    num_classes: int
    name: str | None = None
    plan: ChannelPlan | None = None  # a pruned model: the widths cut from this architecture
    # A structure the zoo's two classes do not cover (another stem, attention, pre-activation,
    # other widths or input channels): built as a GeneralResNet.
    layout: Layout | None = None

    def __post_init__(self) -> None:
        stages = FAMILY_LAYOUT[self.family][2]
        if self.layout is None and len(self.layers) != stages:
            raise ArchitectureError(f"a {self.family} ResNet has {stages} stages, got layers={self.layers}")

    def build(self) -> nn.Module:
        if self.plan is not None:  # the cut happens above this layer: edgeresnet.pruning.rebuild
            raise ArchitectureError(f"{self} is pruned: build it with edgeresnet.pruning.rebuild(spec.plan)")
        if self.layout is not None:
            return GeneralResNet(self.layout)
        if self.family == "cifar":
            return CifarResNet(self.layers, self.num_classes, self.shortcut, self.width)
        block = BasicBlock if self.block == "basic" else Bottleneck
        return ResNet(block, list(self.layers), self.num_classes, self.groups, self.width_per_group, self.width)

    @property
    def options(self) -> dict[str, Any]:
        """For a zoo model, the options that differ from its defaults, so that
        ``create(spec.name, **spec.options)`` rebuilds it; otherwise every field (as JSON
        values: they are written into manifests and channel plans)."""
        if self.name is None:
            return {k: v for k, v in self.to_json().items() if k != "name"}
        return {k: getattr(self, k) for k, v in defaults(self.name).items() if getattr(self, k) != v}

    def to_json(self) -> dict[str, Any]:
        """The fields (but the plan) as JSON values; ``from_json`` reads them back."""
        return {
            f.name: _jsonable(getattr(self, f.name))
            for f in fields(self)
            if f.name != "plan" and (f.name != "layout" or self.layout is not None)
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> ArchSpec:
        values = dict(values)
        if values.get("layout") is not None:
            values["layout"] = Layout(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in values["layout"].items()}
            )
        return cls(**{k: tuple(v) if k == "layers" else v for k, v in values.items()})

    def __str__(self) -> str:
        if self.plan is not None:
            return f"{str(replace(self, plan=None))} pruned ({self.plan.summary})"
        if self.layout is not None:
            return describe_layout(self.layout)
        options = self.options
        if self.name is None:
            return f"custom ResNet ({', '.join(f'{k}={getattr(self, k)}' for k in options)})"
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


def structure_of(spec: ArchSpec) -> dict[str, Any]:
    """The structural facts a person checks against the network they trained (``inspect``)."""
    layout = spec.layout
    if layout is None:
        imagenet = spec.family == "imagenet"
        return {
            "stem": "7x7" if imagenet else "3x3",
            "stem_pool": imagenet,
            "block": spec.block,
            "preact": False,
            "shortcut": "zero-pad" if spec.shortcut == "A" else "projection",
            "attention": None,
            "groups": spec.groups,
            "in_chans": 3,
            "stages": len(spec.layers),
        }
    return {
        "stem": layout.stem,
        "stem_pool": layout.stem_pool,
        "block": "bottleneck" if layout.bottleneck else "basic",
        "preact": layout.preact,
        "shortcut": "avgpool-projection" if layout.down == "avg" else "projection",
        "attention": layout.attention or None,
        "groups": layout.groups,
        "in_chans": layout.in_chans,
        "stages": len(layout.layers),
    }


def describe_layout(layout: Layout) -> str:
    """One line a person can check against the network they trained."""
    stem = {"7x7": "7x7 stem", "3x3": "3x3 stem", "deep": "deep stem"}[layout.stem]
    stem += " + max pool" if layout.stem_pool else " without max pool"
    block = ("pre-activation " if layout.preact else "") + ("bottleneck" if layout.bottleneck else "basic")
    if layout.groups > 1:
        block += f" ({layout.groups} groups)"
    parts = [
        stem,
        f"{block} blocks {list(layout.layers)}",
        f"widths {[layout.block_out(s) for s in range(len(layout.layers))]}",
    ]
    if layout.down == "avg":
        parts.append("avg-pool shortcuts")
    if layout.attention:
        parts.append({"se": "squeeze-excitation", "eca": "ECA"}[layout.attention])
    if layout.in_chans != 3:
        parts.append(f"{layout.in_chans}-channel input")
    parts.append(f"{layout.num_classes} classes")
    return "ResNet (" + ", ".join(parts) + ")"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Layout):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    return list(value) if isinstance(value, tuple) else value
