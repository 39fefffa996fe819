"""From scores and a ratio to the channels each space keeps.

``keep_counts`` decides how many units each segment keeps: the same ratio in every
segment (local) or one score threshold for the whole network (global); each count is
then rounded to a width the int8 kernels like (a multiple of ``round_to``, and of the
groups of a grouped conv). ``choose`` picks the highest-scoring units to fill each count.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .structure import Segment, Structure

Scope = Literal["local", "global"]


def allowed_counts(segment: Segment, round_to: int) -> list[int]:
    """Widths a segment may keep: multiples of the rounding width (at least one), or all of it."""
    step = math.lcm(round_to, segment.groups)
    if step > segment.size:
        return [segment.size]
    return sorted({segment.size, *range(step, segment.size + 1, step)})


def nearest(counts: list[int], value: float) -> int:
    return min(counts, key=lambda c: (abs(c - value), -c))  # ties keep more


def keep_counts(
    structure: Structure,
    scores: dict[str, torch.Tensor],
    ratio: float,
    scope: Scope,
    round_to: int,
    removed_blocks: tuple[str, ...] = (),
) -> dict[str, int]:
    """Segment name -> units kept, for removing ``ratio`` of the units; the segments of
    ``removed_blocks`` keep none."""
    if scope == "local":
        wanted = {s.name: (1 - ratio) * s.size for s in structure.segments}
    else:
        everything = torch.cat([scores[s.name] for s in structure.segments])
        removed = int(round(ratio * len(everything)))
        threshold = everything.sort().values[removed - 1] if removed > 0 else -math.inf
        wanted = {s.name: float((scores[s.name] > threshold).sum()) for s in structure.segments}
    gone = set(removed_blocks)
    return {
        s.name: 0
        if s.removable and block_of(structure, s) in gone
        else nearest(allowed_counts(s, round_to), wanted[s.name])
        for s in structure.segments
    }


def block_of(structure: Structure, segment: Segment) -> str | None:
    return structure.spaces[segment.units[0][0][0]].block


def removable_blocks(structure: Structure) -> list[str]:
    blocks = (block_of(structure, s) for s in structure.segments if s.removable)
    return sorted({block for block in blocks if block is not None})  # a removable segment always has its block


def choose(
    structure: Structure, scores: dict[str, torch.Tensor], counts: dict[str, int]
) -> tuple[dict[str, list[int]], list[str]]:
    """(space -> sorted channels kept, blocks removed) for the given counts."""
    keep: dict[str, set[int]] = {name: set() for name in structure.spaces}
    removed = set()
    for segment in structure.segments:
        count = counts[segment.name]
        if count == 0:
            removed.add(block_of(structure, segment))
            continue
        for index in _best_units(segment, scores[segment.name], count):
            for space, channel in segment.units[index]:
                keep[space].add(channel)
    return {name: sorted(channels) for name, channels in keep.items()}, sorted(removed)


def _best_units(segment: Segment, scores: torch.Tensor, count: int) -> list[int]:
    """The top ``count`` units; in a grouped segment the top count/groups of each group."""
    if segment.groups == 1:
        return sorted(torch.argsort(scores, descending=True, stable=True)[:count].tolist())
    per_group = segment.size // segment.groups
    chosen = []
    for g in range(segment.groups):
        local = scores[g * per_group : (g + 1) * per_group]
        best = torch.argsort(local, descending=True, stable=True)[: count // segment.groups]
        chosen.extend((best + g * per_group).tolist())
    return sorted(chosen)


def kept_fraction(structure: Structure, counts: dict[str, int]) -> float:
    total = sum(s.size for s in structure.segments)
    return sum(counts.values()) / total
