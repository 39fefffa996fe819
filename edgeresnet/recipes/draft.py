"""A recipe's YAML read into plain values, with the file and line of every key and list item.

Every later check (stage names, overrides, settings) reports its problem at the line of the
value it is about, through ``Draft.fail``; an override moves a value's location to the
override (``override 'qat.epochs=2'``). Only plain YAML is read: no tags that build objects,
no aliases or merge keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from ..errors import closest
from .messages import show
from .recipe import START_HINT, TOP_LEVEL, KeyPath, RecipeError

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Draft:
    """A recipe on its way to a Recipe: plain values, and where each one came from."""

    values: dict
    where: dict[KeyPath, str]  # path -> "file:line", or "override 'qat.epochs=2'"

    def locate(self, path: KeyPath) -> str:
        while path not in self.where:
            path = path[:-1]  # a value with no line of its own is reported at its parent's
        return self.where[path]

    def fail(self, path: KeyPath, message: str, hint: str | None = None) -> NoReturn:
        raise RecipeError(f"{self.locate(path)}: {message}", hint)

    def last_override(self, path: KeyPath) -> KeyPath:
        """The value under `path` that the last override set, or `path` if none did."""
        overridden = [
            known for known, where in self.where.items() if known[: len(path)] == path and where.startswith("override ")
        ]
        return overridden[-1] if overridden else path

    @property
    def stages(self) -> list[list]:
        return self.values["stages"]  # [name, settings] pairs, once stage_list.read_stages has normalised them


def parse(text: str, label: str) -> Draft:
    """The recipe in ``text`` (read from ``label``): a mapping of the known top-level keys, with
    a name and stages."""
    # compose, not load: the nodes keep their lines; SafeLoader: no tags that build objects.
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        where: dict[KeyPath, str] = {}
        values = None if root is None else plain(root, (), where, lambda node: f"{label}:{_line(node)}")
    except yaml.YAMLError as error:
        raise _syntax_error(error, label) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise RecipeError(f"{label}: nested too deeply to be a recipe", "is this the right file?") from None
    if root is None or not isinstance(values, dict):
        got = "nothing" if root is None else "a list" if isinstance(values, list) else f"the value {show(values)}"
        line = 1 if root is None else _line(root)
        raise RecipeError(f"{label}:{line}: a recipe is a mapping of {', '.join(TOP_LEVEL)}; got {got}", START_HINT)
    where[()] = f"{label}:{_line(root)}"
    draft = Draft(values, where)
    for key in values:
        if key not in TOP_LEVEL:
            draft.fail((key,), f"unknown top-level key {key!r}", closest(str(key), TOP_LEVEL))
    if "name" not in values:
        draft.fail((), "the recipe has no name", "add a line such as `name: my-recipe`")
    if "stages" not in values:
        draft.fail(
            (),
            "the recipe has no stages",
            "add `stages: []` to export only, or list stages such as `- qat: {epochs: 3}`",
        )
    return draft


def plain(
    node: yaml.Node,
    path: KeyPath,
    where: dict[KeyPath, str],
    locate: Callable[[yaml.Node], str],
    seen: set[int] | None = None,
) -> Any:
    """The Python value of a node, recording in `where` the line of every key and list item."""
    seen = set() if seen is None else seen
    if id(node) in seen or node.tag == MERGE_TAG:
        # An alias (a node met twice) or a merge: fine for YAML, but a recipe has no need of
        # them, and refusing them refuses the exponential "billion laughs" documents too.
        # An alias is reported where it is used (its node's mark is the anchor's); `<<` where it is.
        at = locate(node) if node.tag == MERGE_TAG else where.get(path) or locate(node)
        raise RecipeError(
            f"{at}: aliases (*name) and merge keys (<<) are not allowed in a recipe", "write the values out"
        )
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        return yaml.constructor.SafeConstructor().construct_object(node)
    if node.tag not in ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise RecipeError(f"{locate(node)}: the tag {tag} is not allowed in a recipe", "remove the tag")
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            where[path + (index,)] = locate(item)
            items.append(plain(item, path + (index,), where, locate, seen))
        return items
    mapping: dict = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise RecipeError(f"{locate(key_node)}: a key must be a plain word", "write `key: value`")
        key = plain(key_node, path, where, locate, seen)
        if key in mapping:
            raise RecipeError(f"{locate(key_node)}: key {key!r} given twice", "keep one of the two")
        where[path + (key,)] = locate(key_node)
        mapping[key] = plain(value_node, path + (key,), where, locate, seen)
    return mapping


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _syntax_error(error: yaml.YAMLError, label: str) -> RecipeError:
    mark = getattr(error, "problem_mark", None)
    where = f"{label}:{mark.line + 1}" if mark else label
    problem = getattr(error, "problem", None) or str(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark:
        problem += f" ({context}, line {context_mark.line + 1})"
    if isinstance(error, yaml.constructor.ConstructorError):
        return RecipeError(f"{where}: {problem}", "a recipe holds plain values: remove the tag")
    return RecipeError(
        f"{where}: not valid YAML: {problem}",
        "check the indentation and quotes there, and that each key is followed by ': '",
    )
