"""How much each channel matters: a score per channel of every space.

- ``l1`` / ``l2``: the norm of each output filter of the convs that write the channel
  (Li et al. 2017), summed over those convs.
- ``bn``: |gamma| of the batch norms after them (network slimming, Liu et al. 2017).
- ``taylor``: first-order Taylor expansion of the loss when the channel is removed,
  taken at the batch-norm affine output (Molchanov et al. 2019): (dL/dgamma * gamma +
  dL/dbeta * beta)^2, summed over a few labelled batches. The only criterion that looks
  at data.

A space no batch norm normalises (an SE block's reduced width) is scored by ``l2`` under
``bn`` and ``taylor``; a space nothing writes (a torch.cat's output) is scored through the
spaces its channels come from. ``unit_scores`` divides each space's scores by their mean,
so that one global threshold compares spaces of different depth and width fairly
(Torch-Pruning's "mean" normaliser).
``block_scores`` compares whole blocks with each other in the same way, for removing
the blocks that matter least.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor, nn

from .structure import Structure

Criterion = Literal["l1", "l2", "bn", "taylor"]
CRITERIA: tuple[str, ...] = ("l1", "l2", "bn", "taylor")


def channel_scores(
    module: nn.Module,
    structure: Structure,
    criterion: Criterion,
    batches: Iterable[tuple[Tensor, Tensor]] = (),
) -> dict[str, Tensor]:
    """Space name -> raw score per channel (float64, higher = keep)."""
    if criterion == "taylor":
        per_norm = _taylor(module, structure, batches)
    scores = {}
    for space in structure.spaces.values():
        norms = _affine_norms(module, space)
        if not space.producers:  # written by nothing: scored where its channels come from (unit_scores)
            parts = [torch.zeros(space.channels, dtype=torch.float64)]
        elif criterion in ("l1", "l2") or not norms:
            norm = criterion if criterion in ("l1", "l2") else "l2"
            parts = [_filter_norm(module.get_submodule(conv).weight, norm) for conv in space.producers]
        elif criterion == "bn":
            parts = [module.get_submodule(norm).weight.detach().abs().double() for norm in norms]
        else:
            parts = [per_norm[norm] for norm in norms]
        scores[space.name] = torch.stack(parts).sum(0)
    return scores


def _affine_norms(module: nn.Module, space) -> list[str]:
    return [name for name in space.norms if module.get_submodule(name).weight is not None]


def unit_scores(structure: Structure, raw: dict[str, Tensor]) -> dict[str, Tensor]:
    """Segment name -> score per unit: the mean over the channels the unit ties together,
    each divided by its space's mean score."""
    scores = {name: values / values.mean().clamp_min(1e-12) for name, values in raw.items()}
    written = {name for name, space in structure.spaces.items() if space.producers}

    def unit_score(unit) -> float:
        parts = [float(scores[s][c]) for s, c in unit if s in written]
        return sum(parts) / len(parts) if parts else 0.0

    return {
        segment.name: torch.tensor([unit_score(unit) for unit in segment.units], dtype=torch.float64)
        for segment in structure.segments
    }


def block_scores(structure: Structure, raw: dict[str, Tensor]) -> dict[str, float]:
    """Block -> mean raw score of its inner channels, divided by the mean over all blocks that
    could be removed (identity-shortcut blocks): 1.0 is an average block."""
    removable = {s.units[0][0][0] for s in structure.segments if s.removable}
    per_block: dict[str, list[float]] = {}
    for name in removable:
        space = structure.spaces[name]
        per_block.setdefault(space.block, []).append(float(raw[name].mean()))
    means = {block: sum(values) / len(values) for block, values in per_block.items()}
    average = sum(means.values()) / max(len(means), 1) or 1e-12
    return {block: value / average for block, value in means.items()}


def _filter_norm(weight: Tensor, criterion: str) -> Tensor:
    flat = weight.detach().double().flatten(1)
    return flat.abs().sum(1) if criterion == "l1" else flat.pow(2).sum(1).sqrt()


def _taylor(module: nn.Module, structure: Structure, batches: Iterable[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """(g_gamma * gamma + g_beta * beta)^2 per channel of every batch norm, summed over batches.

    Computed on a copy in eval mode: the gradients are what we want, not updated running
    statistics, and the caller's model must not change.
    """
    import copy

    work = copy.deepcopy(module).eval()
    norms = {
        name: work.get_submodule(name) for space in structure.spaces.values() for name in _affine_norms(work, space)
    }
    totals = {name: torch.zeros(norm.num_features, dtype=torch.float64) for name, norm in norms.items()}
    seen = 0
    for images, labels in batches:
        work.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(work(images), labels)
        loss.backward()
        for name, norm in norms.items():
            gate = norm.weight.grad * norm.weight + norm.bias.grad * norm.bias
            totals[name] += gate.detach().double().pow(2)
        seen += 1
    if seen == 0:
        from ..errors import DataError

        raise DataError(
            "the taylor criterion needs labelled images, and none were given",
            "pass data to prune (--data), or choose --importance l1, l2 or bn",
        )
    return totals
