"""From the graph walk's channel variables to named spaces and their segments.

The walk (graph.py) leaves union-find classes of variables; here each class becomes a
``Space``, or a frozen name when an op the rules cannot follow touched it, and the pads
and cats that tie spaces become the links that ``structure.group_segments`` groups units by.

Spaces are named as the name-based analysis of the zoo named them, so saved channel
plans keep working: a residual stream by its stage (the module holding the block whose
addition first formed it: ``layer2``), any other space by the conv that writes it
(``layer2.0.conv1``, the stem's ``conv1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .removable import removable as block_removable
from .structure import Space, Structure, group_segments

if TYPE_CHECKING:
    from .graph import ChannelWalk


def structure_from_walk(walk: ChannelWalk) -> Structure:
    """The walk's variables as named spaces, the pads and cats that tie them, and their segments."""
    classes = _Classes(walk)
    spaces: dict[str, Space] = {}
    frozen: dict[str, str] = {}
    names: dict[int, str] = {}
    taken: set[str] = set()
    blocks = sorted({block for var in walk.vars for _, block in var.adds if block}, key=len, reverse=True)
    for root in classes.ordered():
        info = classes.info[root]
        name = _unique(classes.name(root), taken)
        names[root] = name
        if info.reason is not None:
            if info.producers and not info.logits_only:
                frozen[name] = info.reason
            continue
        members = [p for _, p in info.producers + info.norms] + [p for _, p in info.consumers]
        block = (
            None
            if info.adds
            else next((b for b in blocks if members and all(m.startswith(b + ".") for m in members)), None)
        )
        spaces[name] = Space(
            name,
            info.channels,
            _paths(info.producers),
            _paths(info.norms),
            _paths(info.consumers),
            groups=math.lcm(*info.groups),
            residual=bool(info.adds),
            block=block,
        )
    pads = {
        path: (names[walk.find(s)], names[walk.find(t)], offset)
        for path, s, t, offset in walk.pads
        if names.get(walk.find(s)) in spaces and names.get(walk.find(t)) in spaces
    }
    pad_links = {(walk.find(s), walk.find(t), offset) for _, s, t, offset in walk.pads}
    links = tuple(
        (names[walk.find(s)], names[walk.find(t)], offset)
        for s, t, offset in walk.links
        if (walk.find(s), walk.find(t), offset) not in pad_links
        and names.get(walk.find(s)) in spaces
        and names.get(walk.find(t)) in spaces
    )
    removable = {block for block in blocks if block_removable(walk.nodes, walk.modules, block)}
    segments = group_segments(spaces, [*pads.values(), *links], removable)
    return Structure(spaces, segments, pads, frozen=frozen, links=links)


def _paths(items: list) -> tuple[str, ...]:
    """Module paths in order of their keys, each once."""
    return tuple(dict.fromkeys(path for _, path in sorted(items)))


def _unique(name: str, taken: set[str]) -> str:
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{name}#{count}"
    taken.add(candidate)
    return candidate


@dataclass
class _Class:
    """What the variables of one union-find class say together."""

    vars: list[int]
    channels: int | None
    producers: list
    norms: list
    consumers: list
    groups: set[int]
    adds: list
    reasons: list
    birth: int

    @property
    def reason(self) -> str | None:
        return min(self.reasons)[1] if self.reasons else None

    @property
    def logits_only(self) -> bool:
        """The classifier's logits: frozen only by being the answer, and read by nothing."""
        return not self.consumers and all(logits for _, _, logits in self.reasons)


class _Classes:
    """The walk's variables gathered by class; a class tied to a frozen one by a pad or a cat
    (or one a grouped conv reads across such a tie) is frozen with it."""

    def __init__(self, walk: ChannelWalk):
        self.walk = walk
        members: dict[int, list[int]] = {}
        for var in range(len(walk.vars)):
            members.setdefault(walk.find(var), []).append(var)
        self.info = {root: self._gather(vars_) for root, vars_ in members.items()}
        self._tie_links()

    def _gather(self, vars_: list[int]) -> _Class:
        records = [self.walk.vars[v] for v in vars_]
        channels = {r.channels for r in records}
        reasons = [reason for r in records for reason in r.frozen]
        if None in channels or len(channels) > 1:
            reasons.append((-1, "the ops that write it disagree on its channel count", False))
        return _Class(
            vars_,
            next(iter(channels)),
            [p for r in records for p in r.producers],
            [n for r in records for n in r.norms],
            [c for r in records for c in r.consumers],
            {g for r in records for g in r.groups},
            sorted(a for r in records for a in r.adds),
            reasons,
            min(r.birth for r in records),
        )

    def _tie_links(self) -> None:
        find = self.walk.find
        parent = {root: root for root in self.info}

        def top(root):
            while parent[root] != root:
                root = parent[root]
            return root

        self.linked = set()
        for source, target, _ in self.walk.links:
            s, t = find(source), find(target)
            self.linked |= {s, t}
            if s == t:
                self.info[s].reasons.append((-1, "a pad or cat ties it to itself", False))
            parent[top(t)] = top(s)
        components: dict[int, list[int]] = {}
        for root in self.linked:
            components.setdefault(top(root), []).append(root)
        for roots in components.values():
            reasons = sorted(r for root in roots for r in self.info[root].reasons if not r[2])
            if not reasons and any(self.info[root].groups - {1} for root in roots):
                reasons = [(-1, "a grouped conv reads channels that a pad or cat ties to others", False)]
            if reasons:
                for root in roots:
                    if not self.info[root].reasons or all(r[2] for r in self.info[root].reasons):
                        self.info[root].reasons.append(reasons[0])

    def ordered(self) -> list[int]:
        """Residual streams first, by their first addition, then the rest by where they are
        written: the order of the name-based analysis."""
        kept = [root for root, info in self.info.items() if info.producers or root in self.linked]
        residual = sorted((r for r in kept if self.info[r].adds), key=lambda r: self.info[r].adds[0])
        rest = sorted((r for r in kept if not self.info[r].adds), key=lambda r: self.info[r].birth)
        return residual + rest

    def name(self, root: int) -> str:
        info = self.info[root]
        if info.adds:
            block = info.adds[0][1]
            stage = block.rpartition(".")[0]
            if stage or block:
                return stage or block
        writers = [v for v in info.vars if self.walk.vars[v].producers] or info.vars
        return self.walk.vars[min(writers, key=lambda v: self.walk.vars[v].birth)].label
