"""Which ResNet a state dict holds, read from its keys and shapes alone.

``detect`` infers the structure (an ``ArchSpec``), then checks it by building that
structure on the meta device (shapes only, no memory) and comparing every key and shape,
so a spec it returns always loads the weights.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.models.cifar import CifarResNet
from edgeresnet.models.registry import Family, create, defaults, list_models, parse
from edgeresnet.models.resnet import BasicBlock, Bottleneck, ResNet

if TYPE_CHECKING:
    from edgeresnet.models.plan import ChannelPlan

_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")
# (head, stem kernel, stages) of each family's layout.
_LAYOUT = {"imagenet": ("fc", 7, 4), "cifar": ("linear", 3, 3)}
# BatchNorm gained this buffer in PyTorch 0.4.1; older checkpoints (Idelbayev's among
# them) lack it, and the model's own zero is the right value for them.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


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
    plan: "ChannelPlan | None" = None  # a pruned model: the widths cut from this architecture

    def __post_init__(self) -> None:
        stages = _LAYOUT[self.family][2]
        if len(self.layers) != stages:
            raise ArchitectureError(
                f"a {self.family} ResNet has {stages} stages, got layers={self.layers}"
            )

    def build(self) -> nn.Module:
        if self.plan is not None:
            return self.plan.build()
        if self.family == "cifar":
            return CifarResNet(self.layers, self.num_classes, self.shortcut, self.width)
        block = BasicBlock if self.block == "basic" else Bottleneck
        return ResNet(
            block, list(self.layers), self.num_classes, self.groups, self.width_per_group, self.width
        )

    @property
    def options(self) -> dict[str, Any]:
        """For a zoo model, the options that differ from its defaults, so that
        ``create(spec.name, **spec.options)`` rebuilds it; otherwise every field."""
        if self.name is None:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "plan")}
        return {k: getattr(self, k) for k, v in defaults(self.name).items() if getattr(self, k) != v}

    def __str__(self) -> str:
        if self.plan is not None:
            return f"{str(replace(self, plan=None))} pruned ({self.plan.summary})"
        options = self.options
        if self.name is None:
            return f"custom ResNet ({', '.join(f'{k}={v}' for k, v in options.items())})"
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


def detect(state_dict: Mapping[str, Tensor]) -> ArchSpec:
    """The architecture of a (prefix-free) state dict, or ArchitectureError."""
    spec = _infer(state_dict)
    with torch.device("meta"):
        expected = spec.build().state_dict()
    problem = mismatch(expected, state_dict)
    if problem:
        raise _not_a_resnet(f"it is close to a {spec.family} ResNet but has {problem}")
    return replace(spec, name=_zoo_name(spec))


def spec_of(arch: str) -> ArchSpec:
    """The spec of a zoo model named with options, e.g. ``"resnet56:num_classes=100"``, or
    of a pruned model, named by its channel plan (``channel-plan.json``)."""
    if arch.endswith(".json"):
        from .plan import ChannelPlan

        return spec_with_plan(ChannelPlan.read(arch))
    name, options = parse(arch)
    with torch.device("meta"):
        model = create(name, **options)
    return replace(_infer(model.state_dict()), name=name)


def spec_with_plan(plan: "ChannelPlan") -> ArchSpec:
    return replace(plan.base_spec(), plan=plan)


def apply_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], name: str | None = None) -> None:
    """Load every weight strictly, or say which keys do not fit ``name`` (the module's class
    name by default)."""
    own = module.state_dict()
    problem = mismatch(own, state_dict)
    if problem:
        raise ArchitectureError(f"the weights do not fit {name or type(module).__name__}: {problem}")
    module.load_state_dict({**own, **state_dict})


def mismatch(expected: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]) -> str | None:
    """How ``state_dict`` differs from ``expected`` in keys and shapes; None when it fits."""
    missing = [k for k in expected if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} is {tuple(state_dict[k].shape)} in the weights, {tuple(expected[k].shape)} in the model"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    parts = [
        f"{len(keys)} {label} key{'s' if len(keys) > 1 else ''} ({_first(keys)})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if keys
    ]
    return "; ".join(parts) or None


def _infer(state_dict: Mapping[str, Tensor]) -> ArchSpec:
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    stem = shapes.get("conv1.weight", ())
    head = "fc" if "fc.weight" in shapes else "linear"
    layers = _blocks_per_stage(shapes)
    if len(stem) != 4 or f"{head}.weight" not in shapes or not layers:
        raise _not_a_resnet("it has no conv1, layer1.0 and fc or linear weights")

    family: Family = "imagenet" if head == "fc" else "cifar"
    if (head, stem[-1], len(layers)) != _LAYOUT[family]:
        raise _not_a_resnet(
            f"its {head} head, {stem[-1]}x{stem[-1]} stem and {len(layers)} stages match neither "
            "torchvision's layout (fc, 7x7, 4 stages) nor the CIFAR one (linear, 3x3, 3 stages)"
        )
    width = stem[0]
    block = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    groups, width_per_group = 1, 64
    if block == "bottleneck":
        if family == "cifar":
            raise _not_a_resnet("it has bottleneck blocks, which CIFAR ResNets do not use")
        # The grouped 3x3 conv is (groups * per_group, per_group, 3, 3), and torchvision
        # sizes per_group as int(planes * width_per_group / 64) with planes = width here.
        conv2 = shapes.get("layer1.0.conv2.weight", ())
        if len(conv2) != 4:
            raise _not_a_resnet("its first bottleneck block has no 3x3 conv2 weight")
        groups = conv2[0] // conv2[1]
        width_per_group = round(conv2[1] * 64 / width)

    if family == "imagenet":
        shortcut = "downsample"
    else:
        shortcut = "B" if any(".shortcut." in k for k in shapes) else "A"
    return ArchSpec(
        family=family,
        block=block,
        layers=layers,
        width=width,
        groups=groups,
        width_per_group=width_per_group,
        shortcut=shortcut,
        num_classes=shapes[f"{head}.weight"][0],
    )


def _blocks_per_stage(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """Blocks in layer1, layer2, ... ; empty when the stages are not numbered 1..N."""
    blocks: dict[int, int] = {}
    for key in shapes:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match[1]), int(match[2])
            blocks[stage] = max(blocks.get(stage, 0), index + 1)
    if sorted(blocks) != list(range(1, len(blocks) + 1)):
        return ()
    return tuple(blocks[stage] for stage in sorted(blocks))


def _zoo_name(spec: ArchSpec) -> str | None:
    """The zoo model with this structure, allowing for its options (num_classes, ...)."""
    for name in list_models(spec.family):
        options = defaults(name)
        zoo = _zoo_spec(name)
        if all(
            getattr(spec, f.name) == getattr(zoo, f.name)
            for f in fields(ArchSpec)
            if f.name not in ("name", "plan") and f.name not in options
        ):
            return name
    return None


@functools.cache
def _zoo_spec(name: str) -> ArchSpec:
    with torch.device("meta"):
        return _infer(create(name).state_dict())


def _not_a_resnet(reason: str) -> ArchitectureError:
    return ArchitectureError(
        f"the weights are not a ResNet this tool knows: {reason}",
        hint="if they are one, name it with --arch (e.g. --arch resnet56)",
    )


def _first(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f", ... {len(items) - n} more" if len(items) > n else "")
