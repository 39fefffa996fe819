"""Which ResNet a state dict holds, read from its keys and shapes alone.

``detect`` infers the structure (an ``ArchSpec``), then checks it by building that
structure on the meta device (shapes only, no memory) and comparing every key and shape,
so a spec it returns always loads the weights.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from torch import Tensor

from edgeresnet.errors import ArchitectureError
from edgeresnet.models.general import Layout
from edgeresnet.models.registry import Family, create, defaults, list_models, parse
from edgeresnet.models.spec import FAMILY_LAYOUT, ArchSpec, describe_layout
from edgeresnet.models.weights import mismatch, shapes_only

if TYPE_CHECKING:
    from edgeresnet.models.plan import ChannelPlan

_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")


def detect(state_dict: Mapping[str, Tensor], **known: Any) -> ArchSpec:
    """The architecture of a (prefix-free) state dict in the zoo's key names (torchvision's,
    timm's or He et al.'s CIFAR ones), or ArchitectureError.

    The zoo's own classes are tried first, then the general one; ``known`` sets the Layout
    fields that weights cannot show (where a bottleneck strides, the first stage's stride).
    """
    problems = []
    if not known:
        try:
            spec = _infer(state_dict)
        except ArchitectureError as error:
            problems.append(error.message.removeprefix(_NOT_A_RESNET))
        else:
            problem = _fits(spec, state_dict)
            if problem is None:
                return replace(spec, name=_zoo_name(spec))
            problems.append(f"it is close to a {spec.family} ResNet but has {problem}")
    if "fc.weight" in state_dict:
        spec = infer_general(state_dict, **known)
        problem = _fits(spec, state_dict)
        if problem is None:
            return spec
        problems.append(f"it is close to a {describe_layout(spec.layout)} but has {problem}")
    raise _not_a_resnet(problems[-1])


def _fits(spec: ArchSpec, state_dict: Mapping[str, Tensor]) -> str | None:
    try:
        with shapes_only():
            expected = spec.build().state_dict()
    except ArchitectureError as error:
        return error.message
    return mismatch(expected, state_dict)


def spec_of(arch: str) -> ArchSpec:
    """The spec of a zoo model named with options, e.g. ``"resnet56:num_classes=100"``, or
    of a pruned model, named by its channel plan (``channel-plan.json``)."""
    if arch.endswith(".json"):
        from .plan import ChannelPlan

        return spec_with_plan(ChannelPlan.read(arch))
    name, options = parse(arch)
    with shapes_only():
        model = create(name, **options)
    return replace(_infer(model.state_dict()), name=name)


def spec_of_model(arch: str, options: Mapping[str, Any]) -> ArchSpec | None:
    """The spec behind a Model's ``arch`` and ``options`` (None for a module no layout describes)."""
    if arch == "module":
        return None
    if "family" in options:  # not a zoo model: every field is there
        return ArchSpec.from_json({**options, "name": None})
    name, _ = parse(arch)
    with shapes_only():
        model = create(name, **options)
    return replace(_infer(model.state_dict()), name=name)


def spec_with_plan(plan: ChannelPlan) -> ArchSpec:
    return replace(plan.base_spec(), plan=plan)


def _infer(state_dict: Mapping[str, Tensor]) -> ArchSpec:
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    stem = shapes.get("conv1.weight", ())
    head = "fc" if "fc.weight" in shapes else "linear"
    layers = _blocks_per_stage(shapes)
    if len(stem) != 4 or f"{head}.weight" not in shapes or not layers:
        raise _not_a_resnet("it has no conv1, layer1.0 and fc or linear weights")

    family: Family = "imagenet" if head == "fc" else "cifar"
    if (head, stem[-1], len(layers)) != FAMILY_LAYOUT[family]:
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


def infer_general(state_dict: Mapping[str, Tensor], **known: Any) -> ArchSpec:
    """The GeneralResNet layout of torchvision- or timm-named weights with an ``fc`` head."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    layers = _blocks_per_stage(shapes)
    if not layers or "layer1.0.conv1.weight" not in shapes or len(shapes.get("fc.weight", ())) != 2:
        raise _not_a_resnet("it has no layer1.0.conv1 and fc weights")
    stem: dict[str, Any] = {}
    if "conv1.0.weight" in shapes:  # timm's deep stem: conv, bn, act, conv, bn, act, conv
        convs = [shapes.get(f"conv1.{i}.weight", ()) for i in (0, 3, 6)]
        if any(len(c) != 4 for c in convs):
            raise _not_a_resnet("its stem is a sequence but not timm's deep stem (conv1.0, conv1.3, conv1.6)")
        stem = dict(stem="deep", stem_widths=(convs[0][0], convs[1][0]), stem_width=convs[2][0], in_chans=convs[0][1])
    else:
        conv = shapes.get("conv1.weight", ())
        if len(conv) != 4 or conv[-1] not in (3, 7):
            raise _not_a_resnet("it has no 3x3 or 7x7 conv1 stem")
        stem = dict(stem="7x7" if conv[-1] == 7 else "3x3", stem_width=conv[0], in_chans=conv[1])
    # The 3x3 stem of CIFAR and Tiny-ImageNet edits runs at full resolution: no max pool.
    stem["stem_pool"] = stem["stem"] != "3x3"
    bottleneck = "layer1.0.conv3.weight" in shapes
    last = "conv3" if bottleneck else "conv2"
    outs = [shapes.get(f"layer{s + 1}.0.{last}.weight", (0,))[0] for s in range(len(layers))]
    planes = tuple(out // 4 if bottleneck else out for out in outs)
    groups, width_per_group = 1, 64
    if bottleneck:
        middle = shapes.get("layer1.0.conv2.weight", ())
        if len(middle) != 4 or planes[0] == 0:
            raise _not_a_resnet("its first bottleneck block has no 3x3 conv2 weight")
        groups = middle[0] // middle[1]
        width_per_group = round(middle[1] * 64 / planes[0])
    # Pre-activation: no norm after the stem, and a block's first norm reads its input.
    preact = (
        "bn1.weight" not in shapes and shapes.get("layer1.0.bn1.weight", (0,))[0] == shapes["layer1.0.conv1.weight"][1]
    )
    down = "avg" if any(re.search(r"\.downsample\.2\.weight$", k) for k in shapes) else "conv"
    attention, sizes = "", ()
    if "layer1.0.se.fc1.weight" in shapes:
        attention = "se"
        sizes = tuple(shapes.get(f"layer{s + 1}.0.se.fc1.weight", (0,))[0] for s in range(len(layers)))
    elif "layer1.0.se.conv.weight" in shapes:
        attention = "eca"
        sizes = tuple(shapes.get(f"layer{s + 1}.0.se.conv.weight", (0, 0, 0))[-1] for s in range(len(layers)))
    layout = Layout(
        layers=layers,
        planes=planes,
        bottleneck=bottleneck,
        groups=groups,
        width_per_group=width_per_group,
        preact=preact,
        down=down,
        attention=attention,
        attention_sizes=sizes,
        num_classes=shapes["fc.weight"][0],
        **stem,
        **known,
    )
    family: Family = "cifar" if layout.stem == "3x3" and not layout.stem_pool else "imagenet"
    return ArchSpec(
        family=family,
        block="bottleneck" if bottleneck else "basic",
        layers=layers,
        width=layout.stem_width,
        groups=groups,
        width_per_group=width_per_group,
        shortcut="downsample",
        num_classes=layout.num_classes,
        layout=layout,
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
    with shapes_only():
        return _infer(create(name).state_dict())


_NOT_A_RESNET = "the weights are not a ResNet this tool knows: "


def _not_a_resnet(reason: str) -> ArchitectureError:
    return ArchitectureError(
        _NOT_A_RESNET + reason,
        hint="if it is a ResNet in another layout, pass the nn.Module itself from Python "
        "(edgeresnet.load_model(module)) or save it with torch.export.save as a .pt2 file",
    )
