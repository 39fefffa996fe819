"""A recipe's ``stages``: which stages, each once, in an order that works.

Stage names, and the order rules (ranks, stages that exclude each other, and why), come from
edgeresnet.stages.registry.STAGES; nothing here names a stage.
"""

from __future__ import annotations

from typing import Any

from ..errors import closest
from ..stages.registry import STAGES, exclusion
from .draft import Draft
from .messages import show


def read_stages(draft: Draft) -> None:
    """``draft``'s ``stages`` as [name, settings] pairs, each a known stage, checked for order."""
    draft.values["stages"] = _stage_list(draft)
    _check_order(draft)


def _stage_list(draft: Draft) -> list[list]:
    raw = draft.values["stages"]
    if raw is None:
        return []
    if not isinstance(raw, list):
        draft.fail(
            ("stages",),
            f"stages must be a list, got {show(raw)}",
            "put each stage on its own line: `- ptq`, or `- qat:` with its settings indented below",
        )
    return [_stage_item(draft, index, item) for index, item in enumerate(raw)]


def _stage_item(draft: Draft, index: int, item: Any) -> list:
    """[name, settings] of one entry of `stages`."""
    path = ("stages", index)
    if isinstance(item, dict) and len(item) > 1:
        # Almost always the settings indented level with the stage's name instead of under it.
        keys = ", ".join(repr(key) for key in item)
        draft.fail(
            path,
            f"a stage entry has one key, the stage's name; this one has {keys}",
            "indent the stage's settings two spaces deeper than its name",
        )
    if isinstance(item, dict) and item:
        ((name, settings),) = item.items()
    elif isinstance(item, str):
        name, settings = item, None
    else:
        draft.fail(
            path,
            f"a stage is a name, or a name and its settings; got {show(item)}",
            "e.g. `- ptq` or `- qat: {epochs: 3}`",
        )
    if name not in STAGES:
        draft.fail(path, f"unknown stage {name!r}", closest(str(name), STAGES))
    if settings is None:
        return [name, {}]  # `- ptq` or `- ptq:`: every default
    if not isinstance(settings, dict):
        draft.fail(
            path + (name,),
            f"stage {name!r} takes settings as `key: value` lines, got {show(settings)}",
            f"e.g. `- {name}:` and below it, indented, `seed: 0`",
        )
    return [name, settings]


def _check_order(draft: Draft) -> None:
    names = [name for name, _ in draft.stages]
    for index, name in enumerate(names):
        for earlier in names[:index]:
            path = ("stages", index)
            if earlier == name:
                draft.fail(path, f"stage {name!r} appears twice", "give it once, with all its settings")
            excluded = exclusion(earlier, name)
            if excluded is not None:
                draft.fail(path, excluded.message, excluded.hint)
            if STAGES[earlier].rank > STAGES[name].rank:
                order = sorted(dict.fromkeys(names), key=lambda stage: STAGES[stage].rank)
                draft.fail(
                    path,
                    f"stage {name!r} cannot come after {earlier!r}: {STAGES[earlier].why_after(STAGES[name])}",
                    f"order stages {', '.join(order)}",
                )
