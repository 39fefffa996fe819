"""Cut channels out of a ResNet: a smaller dense copy, not a mask.

``cut`` takes the channels to keep in each space and rewrites every module that writes
or reads them: conv and linear output filters with their biases (an SE block's 1x1
convs too), batch norms wherever they sit (after a conv, or before one in a
pre-activation block), conv input channels (per group for a ResNeXt conv), the
classifier's inputs, and the offsets of zero-padding shortcuts; a torch.cat needs no
rewrite, its output is as wide as its inputs. A block whose inner channels are all gone
becomes an identity: the analysis allows it only where that is exact, its input being
the output of a ReLU (relu(x + 0) = x) or no activation following the addition.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..models.cifar import PadShortcut
from .structure import Structure


def cut(
    module: nn.Module,
    structure: Structure,
    keep: Mapping[str, Sequence[int]],
    removed_blocks: Sequence[str] = (),
) -> nn.Module:
    """A pruned deep copy of ``module``; ``keep`` maps space names to sorted channel indices
    (spaces not named keep all their channels)."""
    pruned = copy.deepcopy(module)
    removed = set(removed_blocks)
    outputs: dict[str, list[int]] = {}
    inputs: dict[str, list[int]] = {}
    for space in structure.spaces.values():
        if space.block in removed or space.name not in keep:
            continue
        kept = list(keep[space.name])
        for name in (*space.producers, *space.norms):
            outputs[name] = kept
        for name in space.consumers:
            inputs[name] = kept
    with torch.no_grad():
        for name in sorted(set(outputs) | set(inputs)):
            if _inside(name, removed):
                continue
            old = pruned.get_submodule(name)
            if isinstance(old, PadShortcut):
                continue  # set below, from the spaces it joins
            _replace(pruned, name, _sliced(old, outputs.get(name), inputs.get(name)))
    for name, (source, target, offset) in structure.pads.items():
        if _inside(name, removed):
            continue
        pad = pruned.get_submodule(name)
        target_keep = list(keep.get(target, range(structure.spaces[target].channels)))
        width = structure.spaces[source].channels
        pad.before = sum(1 for c in target_keep if c < offset)
        pad.after = sum(1 for c in target_keep if c >= offset + width)
    for block in removed:
        _replace(pruned, block, nn.Identity())
    return pruned


def _inside(name: str, blocks: set[str]) -> bool:
    return any(name == block or name.startswith(block + ".") for block in blocks)


def _sliced(layer: nn.Module, out_keep: list[int] | None, in_keep: list[int] | None) -> nn.Module:
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return _sliced_norm(layer, out_keep)
    if isinstance(layer, nn.Linear):
        out_keep = list(range(layer.out_features)) if out_keep is None else out_keep
        in_keep = list(range(layer.in_features)) if in_keep is None else in_keep
        new = nn.Linear(
            len(in_keep),
            len(out_keep),
            bias=layer.bias is not None,
            device=layer.weight.device,
            dtype=layer.weight.dtype,
        )
        new.weight.copy_(layer.weight[out_keep][:, in_keep])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[out_keep])
        return new
    if isinstance(layer, nn.Conv2d):
        return _sliced_conv(layer, out_keep, in_keep)
    raise TypeError(f"cannot prune a {type(layer).__name__}")  # structure.analyse names only these


def _sliced_norm(norm: nn.modules.batchnorm._BatchNorm, keep: list[int]) -> nn.Module:
    """BatchNorm1d or 2d, with or without affine weights and running statistics."""
    tensor = next((t for t in (norm.weight, norm.running_mean) if t is not None), torch.empty(0))
    options: dict[str, bool] = (
        {"bias": False} if norm.affine and norm.bias is None else {}
    )  # torch >= 2.13: weight without bias
    new = type(norm)(
        len(keep),
        eps=norm.eps,
        momentum=norm.momentum,
        affine=norm.affine,
        track_running_stats=norm.track_running_stats,
        device=tensor.device,
        dtype=tensor.dtype,
        **options,
    )
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(norm, name) is not None:
            getattr(new, name).copy_(getattr(norm, name)[keep])
    if getattr(norm, "num_batches_tracked", None) is not None:
        new.num_batches_tracked.copy_(norm.num_batches_tracked)
    return new.train(norm.training)


def _sliced_conv(conv: nn.Conv2d, out_keep: list[int] | None, in_keep: list[int] | None) -> nn.Conv2d:
    """The conv restricted to ``out_keep`` filters and ``in_keep`` input channels.

    In a grouped conv, output filter o of group g reads only group g's inputs, through
    its own slice of the weight's second axis: each group keeps its own input positions.
    """
    groups = conv.groups
    out_keep = list(range(conv.out_channels)) if out_keep is None else out_keep
    in_keep = list(range(conv.in_channels)) if in_keep is None else in_keep
    weight = conv.weight[out_keep]
    in_per_group = conv.in_channels // groups
    out_per_group = conv.out_channels // groups
    if groups == 1:
        weight = weight[:, in_keep]
    else:
        local = torch.tensor([[c - g * in_per_group for c in in_keep if c // in_per_group == g] for g in range(groups)])
        row_groups = torch.tensor([o // out_per_group for o in out_keep])
        weight = weight[torch.arange(len(out_keep))[:, None], local[row_groups]]  # row r takes its group's inputs
    new = nn.Conv2d(
        len(in_keep),
        len(out_keep),
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    new.weight.copy_(weight)
    if conv.bias is not None:
        new.bias.copy_(conv.bias[out_keep])
    return new


def _replace(root: nn.Module, name: str, layer: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, layer)
