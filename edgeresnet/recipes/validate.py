"""Validation: a Draft's values checked, with every override applied, and made a ``Recipe``.

Each stage's settings are validated strictly by the stage's own config class (from
edgeresnet.stages.registry): ``epochs: 2.5`` or ``macs: "2"`` is a mistake to report at its
line, not a value to coerce.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import closest
from ..stages.registry import STAGES
from .draft import Draft
from .messages import explain, show
from .recipe import DEFAULT_MAX_ACCURACY_DROP, KeyPath, Recipe, Stage


def build(draft: Draft, source: str) -> Recipe:
    """The Recipe ``draft`` describes, read from ``source``."""
    values = draft.values
    name = values["name"]
    if not isinstance(name, str) or not name.strip():
        draft.fail(("name",), f"name must be non-empty text, got {show(name)}", "e.g. `name: my-recipe`")
    description = values.get("description")
    description = "" if description is None else description
    if not isinstance(description, str):
        draft.fail(("description",), f"description must be text, got {show(description)}", "put it in quotes")
    stages = tuple(
        Stage(stage, _stage_config(draft, index, stage, settings, STAGES[stage].config_class()))
        for index, (stage, settings) in enumerate(draft.stages)
    )
    return Recipe(
        name=name,
        description=description,
        targets=_targets(draft),
        stages=stages,
        source=source,
        max_accuracy_drop=_max_accuracy_drop(draft),
    )


def _max_accuracy_drop(draft: Draft) -> float | None:
    if "max_accuracy_drop" not in draft.values:
        return DEFAULT_MAX_ACCURACY_DROP
    value = draft.values["max_accuracy_drop"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        draft.fail(
            ("max_accuracy_drop",),
            f"max_accuracy_drop must be top-1 points from 0 to 100, got {show(value)}",
            "e.g. `max_accuracy_drop: 1.0`, or `max_accuracy_drop: null` for no check",
        )
    return float(value)


def _targets(draft: Draft) -> tuple[str, ...]:
    targets = draft.values.get("targets")
    if targets is None:
        return ()
    if not isinstance(targets, list):
        draft.fail(("targets",), f"targets must be a list, got {show(targets)}", "e.g. targets: [tflite-int8]")
    for index, target in enumerate(targets):
        _check_target(draft, ("targets", index), target)
        if target in targets[:index]:
            draft.fail(("targets", index), f"target {target!r} is listed twice", "list it once")
    return tuple(targets)


def _check_target(draft: Draft, path: KeyPath, target: Any, setting: str = "") -> None:
    from ..export.targets import TARGETS

    if not isinstance(target, str) or target not in TARGETS:
        draft.fail(path, f"unknown target {show(target)}{setting}", closest(str(target), TARGETS))


def _stage_config(draft: Draft, index: int, stage: str, settings: dict, cls: type[BaseModel]) -> BaseModel:
    path = ("stages", index, stage)
    _check_keys(draft, path, settings, cls, f"stage {stage!r}")
    try:
        # strict: `epochs: 2.5`, `macs: "2"` or `remove_blocks: 1` is a mistake, not something to coerce.
        config = cls.model_validate(settings, strict=True)
    except ValidationError as error:
        loc, message, hint = explain(error.errors()[0], cls, stage)
        # A check of the whole stage that an override made fail is the override's doing.
        draft.fail(path + loc if loc else draft.last_override(path), message, hint)
    # Settings that name an export target (prune's latency.target) must name one that exists.
    for setting in STAGES[stage].target_settings:
        value: Any = config
        for part in setting:
            value = getattr(value, part)
        dotted = ".".join((stage, *setting))
        _check_target(draft, path + setting, value, f" in {dotted}")
    return config


def _check_keys(draft: Draft, path: KeyPath, settings: dict, cls: type[BaseModel], what: str) -> None:
    """Unknown keys, nested ones too, with the key they were probably meant to be."""
    fields = cls.model_fields
    for key, value in settings.items():
        if key not in fields:
            draft.fail(path + (key,), f"unknown key {key!r} in {what}", closest(str(key), fields))
        nested = fields[key].annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel) and isinstance(value, dict):
            dotted = ".".join(map(str, (*path[2:], key)))
            _check_keys(draft, path + (key,), value, nested, repr(dotted))
