"""Size and cost of a ResNet module, and the width of its stages.

Which channels residual additions tie together is read from the traced graph, in
``edgeresnet.pruning`` (``groups.residual_groups``), not from module names here.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import cast

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, input_size: int | tuple[int, int]) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one image (as many channels as
    the first conv reads)."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    model = meta_copy(module).eval()
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = first.in_channels if first is not None else 3
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
        model(torch.empty(1, channels, height, width, device="meta"))
    return macs


def stage_widths(module: nn.Module) -> tuple[int, ...]:
    """Output channels of each stage (layer1, layer2, ...); empty for a module without such stages."""
    if not any(re.fullmatch(r"layer\d+", name) for name, _ in module.named_children()):
        return ()
    widths = []
    for stage, blocks in _stages(module):
        last = max(i for i, block in enumerate(blocks) if not _removed(block))
        conv, _ = _last_conv(blocks[last])
        widths.append(module.get_submodule(f"{stage}.{last}.{conv}").out_channels)
    return tuple(widths)


def _removed(block: nn.Module) -> bool:
    """Pruning replaces a block whose inner channels are all gone by an identity."""
    return isinstance(block, nn.Identity)


def _stages(module: nn.Module) -> list[tuple[str, nn.Sequential]]:
    # A layerN is a sequence of blocks in every ResNet layout (iterated and indexed by position);
    # named_children types it as any Module.
    stages = [(n, cast(nn.Sequential, c)) for n, c in module.named_children() if re.fullmatch(r"layer\d+", n)]
    if not stages:
        raise ArchitectureError(
            f"{type(module).__name__} has no layer1, layer2, ... stages",
            hint="this works on the ResNets of the zoo (see list_models())",
        )
    return stages


def _last_conv(block: nn.Module) -> tuple[str, str]:
    """The conv and norm whose output the residual addition takes (bottleneck: conv3)."""
    return ("conv3", "bn3") if hasattr(block, "conv3") else ("conv2", "bn2")


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
