"""Which channels of a ResNet can go, and which must go together.

A *space* is one set of channels that several modules must agree on: the output channels
of the convs (and batch norms) that write it, and the input channels of the modules that
read it. Inside a block each conv's output is a space of its own; the residual stream of
a stage is one space shared by every block of that stage (``residual_groups``).

A *unit* is the smallest thing pruning removes: one channel of a space, or, across a
zero-padding shortcut, the chain of channels the padding ties together (channel c of
layer1 is channel 8 + c of layer2, whose sum with layer2's own output it joins). Units
with the same spaces form a *segment*; a segment keeps a multiple of the rounding width,
so every space, being a sum of segments, does too.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..models.cifar import PadShortcut
from ..models.summary import _last_conv, _removed, _shortcut, _stages, residual_groups


@dataclass(frozen=True)
class Space:
    name: str  # the stage for a residual stream ("layer2"), else the conv that writes it ("layer2.0.conv1")
    channels: int
    producers: tuple[str, ...]  # convs whose output channels these are
    norms: tuple[str, ...]  # the batch norms after them
    consumers: tuple[str, ...]  # convs, linear heads and pad shortcuts that read them
    groups: int = 1  # a grouped conv writes or reads it: each group keeps the same number
    residual: bool = False
    block: str | None = None  # the block whose inner width this is


@dataclass(frozen=True)
class Segment:
    """Units that share their spaces, pruned under one keep count."""

    name: str
    units: tuple[tuple[tuple[str, int], ...], ...]  # each unit: its (space, channel) members
    groups: int = 1
    removable: bool = False  # its block's branch can go entirely (an identity-shortcut block)

    @property
    def size(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class Structure:
    spaces: dict[str, Space]
    segments: tuple[Segment, ...]
    pads: dict[str, tuple[str, str, int]]  # pad shortcut -> (source space, target space, offset)


def zoo_module(model) -> nn.Module:
    """The model as the zoo's own classes (whose structure pruning knows), with its weights.

    A user's own module may write its shortcut as a lambda or its blocks differently;
    rebuilding from the detected architecture makes the surgery exact for every ResNet
    the zoo can describe.
    """
    from ..models.detect import apply_state_dict, detect

    state = model.module.state_dict()
    module = model.plan.build() if model.plan else detect(state).build()
    apply_state_dict(module, state, model.arch)
    return module.eval()


def analyse(module: nn.Module) -> Structure:
    """The spaces and segments of a zoo ResNet (or one built like them)."""
    spaces: dict[str, Space] = {}
    pads: dict[str, tuple[str, str, int]] = {}
    for group in residual_groups(module):
        spaces[group.stage] = Space(group.stage, group.channels, group.producers, group.norms, group.consumers,
                                    residual=True)
    stem_tied = any("conv1" in space.producers for space in spaces.values())
    if not stem_tied:  # the stem feeds a projection shortcut only: its width is free
        readers = ("layer1.0.conv1", f"layer1.0.{_shortcut(module.layer1[0])[0]}.0")
        spaces["conv1"] = Space("conv1", module.conv1.out_channels, ("conv1",), ("bn1",), readers)
    for stage, blocks in _stages(module):
        for index, block in enumerate(blocks):
            if _removed(block):
                continue
            name = f"{stage}.{index}"
            for space in _inner_spaces(name, block):
                spaces[space.name] = space
            shortcut = _shortcut(block)
            if shortcut is not None and isinstance(shortcut[1], PadShortcut):
                target = stage
                source = _space_reading(spaces, f"{name}.{shortcut[0]}")
                pads[f"{name}.{shortcut[0]}"] = (source, target, shortcut[1].before)
    return Structure(spaces, _segments(module, spaces, pads), pads)


def _inner_spaces(name: str, block: nn.Module) -> list[Space]:
    """A basic block's conv1 output; a bottleneck's conv1 and (grouped) conv2 outputs."""
    last_conv, _ = _last_conv(block)
    convs = ["conv1", "conv2"] if last_conv == "conv3" else ["conv1"]
    groups = block.conv2.groups
    spaces = []
    for conv, reader in zip(convs, convs[1:] + [last_conv]):
        spaces.append(Space(
            f"{name}.{conv}", getattr(block, conv).out_channels, (f"{name}.{conv}",), (f"{name}.bn{conv[-1]}",),
            (f"{name}.{reader}",), groups=groups if "conv2" in (conv, reader) else 1, block=name,
        ))
    return spaces


def _space_reading(spaces: dict[str, Space], consumer: str) -> str:
    return next(space.name for space in spaces.values() if consumer in space.consumers)


def _segments(module: nn.Module, spaces: dict[str, Space], pads) -> tuple[Segment, ...]:
    # Union the channels a zero-padding shortcut ties: source c ~ target offset + c.
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(item):
        while parent.get(item, item) != item:
            item = parent[item]
        return item

    for source, target, offset in pads.values():
        for c in range(spaces[source].channels):
            parent[find((target, offset + c))] = find((source, c))
    units: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for space in spaces.values():
        for c in range(space.channels):
            units.setdefault(find((space.name, c)), []).append((space.name, c))
    by_spaces: dict[tuple[str, ...], list[tuple[tuple[str, int], ...]]] = {}
    for members in units.values():
        key = tuple(sorted({s for s, _ in members}, key=list(spaces).index))
        by_spaces.setdefault(key, []).append(tuple(sorted(members, key=lambda m: list(spaces).index(m[0]))))
    segments = []
    for key, unit_list in by_spaces.items():
        unit_list.sort(key=lambda unit: unit[0][1])
        first = spaces[key[0]]
        block = first.block if len(key) == 1 else None
        removable = block is not None and _shortcut(module.get_submodule(block)) is None
        name = "+".join(key) if len(key) > 1 or not first.residual else key[0]
        if first.residual and len(key) > 1:
            name = f"{key[0]} (tied to {', '.join(key[1:])})"
        segments.append(Segment(name, tuple(unit_list), first.groups if len(key) == 1 else 1, removable))
    return tuple(segments)


def first_channels(space: Space, width: int) -> list[int]:
    """``width`` channels of ``space`` that respect its groups: the first of each group."""
    per_group = space.channels // space.groups
    keep_per_group = width // space.groups
    return [g * per_group + c for g in range(space.groups) for c in range(keep_per_group)]
