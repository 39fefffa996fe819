"""Channels tied by residual additions, as `inspect` shows them: read from the traced graph.

A view of ``structure.analyse``: each residual space (a stage's stream) with the modules that
write, normalise and read it, and the stream it is zero-padded from, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .structure import analyse


@dataclass(frozen=True)
class PadLink:
    """Option A: the previous stream's channels enter this one zero-padded.

    Channel ``c`` of ``source`` is channel ``offset + c`` here, e.g. layer1's 16 channels
    are channels 8..23 of layer2's 32.
    """

    source: str
    channels: int
    offset: int

    @property
    def range(self) -> range:
        return range(self.offset, self.offset + self.channels)


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels that residual additions tie together: pruned together or not at all."""

    stage: str
    channels: int
    producers: tuple[str, ...]
    norms: tuple[str, ...]
    consumers: tuple[str, ...]
    padded_from: PadLink | None = None


def residual_groups(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[ChannelGroup]:
    """One ChannelGroup per residual stream, stem to head."""
    structure = analyse(module, input_shape)
    pads = {
        target: PadLink(source, structure.spaces[source].channels, offset)
        for source, target, offset in structure.pads.values()
    }
    return [
        ChannelGroup(space.name, space.channels, space.producers, space.norms, space.consumers, pads.get(space.name))
        for space in structure.spaces.values()
        if space.residual
    ]


def frozen_spaces(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> dict[str, str]:
    """Spaces pruning leaves whole, with the op that froze each."""
    return dict(analyse(module, input_shape).frozen)
