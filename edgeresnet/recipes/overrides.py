"""Overrides: ``-o/--set KEY=VALUE`` changes one value of a recipe before it is checked.

``qat.epochs=2`` sets a stage's setting, ``prune.latency.target=openvino-int8`` a nested
one, ``targets=[tflite-int8]`` a top-level key. The value is read as YAML; from then on,
an error about that value names the override instead of the file's line.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import closest
from ..stages.registry import STAGES
from .draft import Draft, plain
from .recipe import START_HINT, TOP_LEVEL, KeyPath, RecipeError


def apply_override(draft: Draft, text: str) -> None:
    """`qat.epochs=2`, `prune.latency.target=openvino-int8` or `targets=[tflite-int8]`, on the raw values."""
    where = f"override {text!r}"
    key, equals, raw = text.partition("=")
    parts = [part.strip() for part in key.split(".")]
    if not equals or not all(parts):
        raise RecipeError(f"{where}: an override is KEY=VALUE", "e.g. qat.epochs=2 or targets=[tflite-int8]")
    value = _override_value(raw, where)
    head, *rest = parts
    present = [name for name, _ in draft.stages]
    if not rest:
        if head == "stages":
            raise RecipeError(
                f"{where}: stages cannot be overridden, only their settings",
                f"set one with STAGE.KEY=VALUE, or {START_HINT}",
            )
        if head in STAGES:
            raise RecipeError(f"{where}: name a setting of the stage", f"e.g. {head}.seed=1")
        if head not in TOP_LEVEL:
            raise RecipeError(f"{where}: unknown key {head!r}", closest(head, [k for k in TOP_LEVEL if k != "stages"]))
        draft.values[head] = value
        _mark(draft, (head,), where)
        return
    if head not in present:
        if head not in STAGES:
            raise RecipeError(f"{where}: unknown stage {head!r}", closest(head, present or STAGES))
        raise RecipeError(
            f"{where}: the recipe has no stage {head!r}, only {', '.join(present) or 'none'}",
            "to add a stage, edit a copy of the recipe: edgeresnet recipes show NAME > my-recipe.yaml",
        )
    index = present.index(head)
    path: KeyPath = ("stages", index, head)
    settings = draft.stages[index][1]
    for part in rest[:-1]:  # nested settings: prune.latency.target
        path += (part,)
        if part not in settings:
            settings[part] = {}
            _mark(draft, path, where)
        settings = settings[part]
        if not isinstance(settings, dict):
            raise RecipeError(
                f"{where}: {'.'.join(map(str, path[2:]))} is a value, not a group of settings",
                f"set it with {'.'.join(map(str, path[2:]))}=VALUE",
            )
    settings[rest[-1]] = value
    _mark(draft, path + (rest[-1],), where)


def _override_value(raw: str, where: str) -> Any:
    """The value of an override, read as YAML: 2, 0.5, true, null, [a, b] or text."""
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        return None if node is None else plain(node, (), {}, lambda _: where)
    except yaml.YAMLError as error:
        raise RecipeError(
            f"{where}: the value is not valid YAML ({getattr(error, 'problem', error)})",
            "quote it, e.g. description='a: b'",
        ) from None


def _mark(draft: Draft, path: KeyPath, where: str) -> None:
    """Errors about `path`, and anything under it, now name the override, not the file."""
    for known in [known for known in draft.where if known[: len(path)] == path]:
        del draft.where[known]
    draft.where[path] = where
