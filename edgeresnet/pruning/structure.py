"""Which channels of a ResNet can go, and which must go together.

A *space* is one set of channels that several modules must agree on: the output channels
of the convs (and batch norms) that write it, and the input channels of the modules that
read it. Inside a block each conv's output is a space of its own; the residual stream of
a stage is one space shared by every block of that stage. ``analyse`` finds them in the
model's traced graph (graph.py), for any ResNet-like module; a space the graph cannot
follow (an unknown op touches its channels) is *frozen*: it keeps every channel.

A *unit* is the smallest thing pruning removes: one channel of a space, or, across a
zero-padding shortcut, the chain of channels the padding ties together (channel c of
layer1 is channel 8 + c of layer2, whose sum with layer2's own output it joins). Units
with the same spaces form a *segment*; a segment keeps a multiple of the rounding width,
so every space, being a sum of segments, does too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ArchitectureError


@dataclass(frozen=True)
class Space:
    name: str  # the stage for a residual stream ("layer2"), else the conv that writes it ("layer2.0.conv1")
    channels: int
    producers: tuple[str, ...]  # convs (and linears) whose output channels these are
    norms: tuple[str, ...]  # the batch norms that normalise them (after a conv, or before one: pre-activation)
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
    # Spaces that keep every channel, each with the op that froze it (an op the analysis cannot
    # follow through the channels: a module path, or a function and the module it runs in).
    frozen: dict[str, str] = field(default_factory=dict)
    links: tuple[tuple[str, str, int], ...] = ()  # torch.cat along channels: (input, output, offset)


def zoo_module(model) -> nn.Module:
    """The model as the class its weights fit (a zoo or general ResNet), with its weights:
    ``prunable``'s fallback for a user's module whose graph freezes spaces."""
    from ..models.detect import detect
    from ..models.weights import apply_state_dict

    state = model.module.state_dict()
    if model.plan:
        from .rebuild import rebuild

        module = rebuild(model.plan)
    else:
        module = detect(state).build()
    apply_state_dict(module, state, model.arch)
    return module.eval()


def analyse(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> Structure:
    """The spaces and segments of any ResNet-like module, read from its traced graph (graph.py).

    ``input_shape`` defaults to one 32x32 image with the first conv's input channels; the
    graph runs on meta tensors, so the size costs nothing.
    """
    from .graph import analyse as from_graph

    if input_shape is None:
        first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        input_shape = (1, first.in_channels if first is not None else 3, 32, 32)
    return from_graph(module, tuple(input_shape))


def prunable(model) -> tuple[nn.Module, Structure]:
    """The module ``prune`` and ``sensitivity`` cut, and its structure: ``model.module`` itself,
    whatever its class, analysed from its graph.

    One fallback remains: a module of the user's own class whose graph freezes spaces (a
    ResNet-20 whose zero-padding shortcut is a lambda: its widths are constants that pruning
    cannot rewrite, so every residual stream it touches is frozen) is rebuilt as the zoo (or
    general) class its weights fit, when the two compute the same outputs and the rebuilt
    one freezes less. Loading already rebuilds such modules; this covers a Model made by hand.
    """
    module = model.module
    shape = getattr(model, "input_shape", None)
    structure = analyse(module, shape)
    if not structure.frozen or type(module).__module__.startswith("edgeresnet."):
        return module, structure
    try:
        zoo = zoo_module(model)
    except ArchitectureError:
        return module, structure
    if not _same_outputs(module, zoo, shape or (1, 3, 32, 32)):
        return module, structure
    rebuilt = analyse(zoo, shape)
    return (zoo, rebuilt) if len(rebuilt.frozen) < len(structure.frozen) else (module, structure)


def _same_outputs(module: nn.Module, other: nn.Module, shape: tuple[int, ...]) -> bool:
    x = torch.randn((2, *shape[1:]), generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():  # on a copy: a module in training mode would update its statistics
            return bool(torch.allclose(copy.deepcopy(module).eval()(x), other.eval()(x), rtol=1e-4, atol=1e-4))
    except Exception:  # a module that does not take this input is not that zoo model
        return False


def group_segments(spaces: dict[str, Space], links, removable: set[str]) -> tuple[Segment, ...]:
    """Group the units of ``spaces``: ``links`` are (source, target, offset) ties, source
    channel c being target channel offset + c (a zero-padding shortcut, a cat); a segment
    of one block's space is removable when the block is in ``removable``."""
    # Union the channels a link ties: source c ~ target offset + c.
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(item):
        while parent.get(item, item) != item:
            item = parent[item]
        return item

    for source, target, offset in links:
        for c in range(spaces[source].channels):
            a, b = find((target, offset + c)), find((source, c))
            if a != b:
                parent[a] = b
    order = {name: index for index, name in enumerate(spaces)}
    units: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for space in spaces.values():
        for c in range(space.channels):
            units.setdefault(find((space.name, c)), []).append((space.name, c))
    by_spaces: dict[tuple[str, ...], list[tuple[tuple[str, int], ...]]] = {}
    for members in units.values():
        key = tuple(sorted({s for s, _ in members}, key=order.__getitem__))
        by_spaces.setdefault(key, []).append(tuple(sorted(members, key=lambda m: order[m[0]])))
    segments = []
    for key, unit_list in by_spaces.items():
        unit_list.sort(key=lambda unit: unit[0][1])
        first = spaces[key[0]]
        block = first.block if len(key) == 1 else None
        name = "+".join(key) if len(key) > 1 or not first.residual else key[0]
        if first.residual and len(key) > 1:
            name = f"{key[0]} (tied to {', '.join(key[1:])})"
        segments.append(Segment(name, tuple(unit_list), first.groups if len(key) == 1 else 1, block in removable))
    return tuple(segments)


def first_channels(space: Space, width: int) -> list[int]:
    """``width`` channels of ``space`` that respect its groups: the first of each group."""
    per_group = space.channels // space.groups
    keep_per_group = width // space.groups
    return [g * per_group + c for g in range(space.groups) for c in range(keep_per_group)]
