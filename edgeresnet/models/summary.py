"""Size, cost and channel structure of a ResNet module.

``residual_groups`` is the core a pruner builds on: channels joined by a residual
addition must be removed together, from every module that writes them and every module
that reads them.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.models.cifar import PadShortcut


@dataclass(frozen=True)
class PadLink:
    """Option A: the previous group's channels enter this group zero-padded.

    Channel ``c`` of ``source`` is channel ``offset + c`` here, e.g. layer1's 16
    channels are channels 8..23 of layer2's 32.
    """

    source: str
    channels: int
    offset: int

    @property
    def range(self) -> range:
        return range(self.offset, self.offset + self.channels)


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels that residual additions tie together within one stage.

    ``producers`` are the convs whose outputs are summed into these channels (the stem
    conv when the stage's first block is an identity, each block's last conv, a
    projection shortcut's conv); ``norms`` are the BatchNorms after them, in the same
    order; ``consumers`` are the modules that read the channels (the next blocks' first
    convs, the next stage's shortcut, or the classifier head).
    """

    stage: str
    channels: int
    producers: tuple[str, ...]
    norms: tuple[str, ...]
    consumers: tuple[str, ...]
    padded_from: PadLink | None = None


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, input_size: int | tuple[int, int]) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one 3-channel image."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    model = meta_copy(module).eval()
    macs = 0

    def count(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal macs
        if isinstance(layer, nn.Conv2d):
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            macs += output.numel() * (layer.in_channels // layer.groups) * kernel
        elif isinstance(layer, nn.Linear):
            macs += output.numel() * layer.in_features

    for layer in model.modules():
        layer.register_forward_hook(count)
    with torch.no_grad():
        model(torch.empty(1, 3, height, width, device="meta"))
    return macs


def stage_widths(module: nn.Module) -> tuple[int, ...]:
    """Output channels of each stage (layer1, layer2, ...)."""
    widths = []
    for stage, blocks in _stages(module):
        last = max(i for i, block in enumerate(blocks) if not _removed(block))
        conv, _ = _last_conv(blocks[last])
        widths.append(module.get_submodule(f"{stage}.{last}.{conv}").out_channels)
    return tuple(widths)


def _removed(block: nn.Module) -> bool:
    """Pruning replaces a block whose inner channels are all gone by an identity."""
    return isinstance(block, nn.Identity)


@dataclass
class _Stream:
    """The residual stream while it is being walked: a ChannelGroup under construction."""

    stage: str | None
    producers: list[tuple[str, str]]
    consumers: list[str] = field(default_factory=list)
    padded_from: PadLink | None = None


def residual_groups(module: nn.Module) -> list[ChannelGroup]:
    """One ChannelGroup per stage, walking the residual stream from stem to head."""
    groups: list[ChannelGroup] = []

    def finish(stream: _Stream) -> None:
        # A stream that never met an identity block is the stem alone, feeding a
        # projection: its channels are tied to nothing and prune freely.
        if stream.stage is not None:
            convs, norms = zip(*stream.producers)
            channels = module.get_submodule(convs[-1]).out_channels
            consumers = tuple(stream.consumers)
            groups.append(ChannelGroup(stream.stage, channels, convs, norms, consumers, stream.padded_from))

    stream = _Stream(stage=None, producers=[("conv1", "bn1")])
    for stage, blocks in _stages(module):
        for index, block in enumerate(blocks):
            if _removed(block):
                continue
            name = f"{stage}.{index}"
            stream.consumers.append(f"{name}.conv1")
            shortcut = _shortcut(block)
            if shortcut is None:
                stream.stage = stream.stage or stage
            else:
                attr, path = shortcut
                if isinstance(path, PadShortcut):
                    stream.consumers.append(f"{name}.{attr}")
                    channels = module.get_submodule(f"{name}.{_last_conv(block)[0]}").out_channels
                    link = PadLink(
                        source=stream.stage or "conv1",
                        channels=channels - path.before - path.after,
                        offset=path.before,
                    )
                    finish(stream)
                    stream = _Stream(stage, [], padded_from=link)
                else:
                    stream.consumers.append(f"{name}.{attr}.0")
                    finish(stream)
                    stream = _Stream(stage, [(f"{name}.{attr}.0", f"{name}.{attr}.1")])
            conv, norm = _last_conv(block)
            stream.producers.append((f"{name}.{conv}", f"{name}.{norm}"))
    stream.consumers.append("fc" if isinstance(getattr(module, "fc", None), nn.Linear) else "linear")
    finish(stream)
    return groups


def _stages(module: nn.Module) -> list[tuple[str, nn.Sequential]]:
    stages = [(n, c) for n, c in module.named_children() if re.fullmatch(r"layer\d+", n)]
    if not stages:
        raise ArchitectureError(
            f"{type(module).__name__} has no layer1, layer2, ... stages",
            hint="this works on the ResNets of the zoo (see list_models())",
        )
    return stages


def _last_conv(block: nn.Module) -> tuple[str, str]:
    """The conv and norm whose output the residual addition takes (bottleneck: conv3)."""
    return ("conv3", "bn3") if hasattr(block, "conv3") else ("conv2", "bn2")


def _shortcut(block: nn.Module) -> tuple[str, nn.Module] | None:
    """The block's shortcut (torchvision: ``downsample``, CIFAR: ``shortcut``), or None
    when it is an identity."""
    for attr in ("downsample", "shortcut"):
        path = getattr(block, attr, None)
        if path is not None and not isinstance(path, nn.Identity):
            return attr, path
    return None


def meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose tensors are shape-only meta tensors, so that no weight is
    copied and the forward pass costs nothing even for resnext101 at 224x224.

    Seeding deepcopy's memo with the replacements makes it use them in place of the
    originals; the input module is left untouched.
    """
    memo: dict[int, Tensor] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = meta
    return copy.deepcopy(module, memo)
