"""Find the pruning ratio that meets a target: fewer MACs by a factor, or a measured latency.

Both are monotone in the ratio up to rounding and noise, so a bisection over the ratio
finds the smallest one that meets the target; the most a target can ask for is what
every segment at its minimum width gives, and a target beyond it fails naming that value.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import EdgeResNetError

Counts = dict[str, int]


def fewest_blocks(order: list[str], meets: Callable[[tuple[str, ...]], bool]) -> tuple[str, ...] | None:
    """The shortest prefix of ``order`` (least important blocks first) whose removal meets
    the target, or None when removing them all does not."""
    if not order or not meets(tuple(order)):
        return None
    low, high = 0, len(order)  # meets(order[:high]) holds
    while low < high:
        middle = (low + high) // 2
        if meets(tuple(order[:middle])):
            high = middle
        else:
            low = middle + 1
    return tuple(order[:high])


def smallest_ratio(
    counts_at: Callable[[float], Counts],
    meets: Callable[[Counts], bool],
    steps: int = 14,
) -> Counts:
    """Counts at the smallest ratio in [0, 1) whose counts meet the target; the caller has
    checked that the minimum counts meet it."""
    low, high = 0.0, 1.0
    best = None
    for _ in range(steps):
        middle = (low + high) / 2
        counts = counts_at(middle)
        if meets(counts):
            high, best = middle, counts
        else:
            low = middle
    return best if best is not None else counts_at(high)


def unreachable(what: str, best: str, fix: str) -> EdgeResNetError:
    return EdgeResNetError(f"{what} cannot be reached: the most pruning can give is {best}", fix)


def fill_up(
    counts: Counts,
    structure,
    scores,
    round_to: int,
    still_meets: Callable[[Counts], bool],
    budget: int = 400,
) -> Counts:
    """Give back channels, the most important first, while the target still holds.

    The bisection moves one threshold for the whole network, and rounding makes it
    jump: asked for 2x fewer MACs it may land on 2.4x. Widening one segment at a time
    by one rounding step, best next units first, brings it back towards 2x.
    """
    from .select import allowed_counts

    ranked = {name: values.sort(descending=True).values for name, values in scores.items()}
    while budget > 0:
        candidates = []
        for segment in structure.segments:
            count = counts[segment.name]
            wider = [c for c in allowed_counts(segment, round_to) if c > count]
            if count == 0 or not wider:  # a removed block stays removed
                continue
            gain = float(ranked[segment.name][count : wider[0]].mean())
            candidates.append((gain, segment.name, wider[0]))
        for _, name, wider in sorted(candidates, reverse=True):
            budget -= 1
            trial = {**counts, name: wider}
            if still_meets(trial):
                counts = trial
                break
            if budget <= 0:
                break
        else:
            return counts
    return counts
