"""How a setting that does not validate reads to the user: one line, in the user's words.

pydantic reports a list of errors, each a location, a type and an English message. The user
sees the first one only, as one line: in a recipe, rewritten as the recipe spells things
(``qat.epochs must be an integer >= 1, got 0``, see ``explain``); on the command line, the
flag and pydantic's message (``invalid --ratio: Input should be ...``, see ``invalid``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import EdgeResNetError, closest
from .recipe import KeyPath

_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def invalid(
    error: ValidationError, subject: str | Callable[[KeyPath], str], hint: str | None = None
) -> EdgeResNetError:
    """pydantic's first complaint as the error the user sees: ``invalid SUBJECT: what is wrong``.

    ``subject`` names what was given: text (``"preprocessing"``), or a function of the
    complaint's location, e.g. the CLI's flag of a field: ``("round_to",)`` -> ``--round-to``.
    """
    first = error.errors()[0]
    name = subject(tuple(first["loc"])) if callable(subject) else subject
    return EdgeResNetError(f"invalid {name}: {_message(first)}", hint)


def explain(error: ErrorDetails, cls: type[BaseModel], stage: str) -> tuple[KeyPath, str, str | None]:
    """One pydantic error of stage ``stage``'s settings (of class ``cls``) as (path within the
    stage, one line, a fix)."""
    loc, annotation = _field(cls, tuple(error["loc"]))
    if not loc:  # a check of the whole stage, e.g. prune's "exactly one target"
        return (), f"stage {stage!r}: {_message(error)}", None
    dotted = ".".join(map(str, (stage, *loc)))
    kind, got = _kind(annotation), show(error["input"])
    if error["type"] in _BOUNDS:
        sign, key = _BOUNDS[error["type"]]
        return loc, f"{dotted} must be {kind} {sign} {error.get('ctx', {})[key]}, got {got}", None
    if error["type"] == "literal_error":
        choices = [str(choice) for choice in typing.get_args(annotation)]
        suggestion = closest(error["input"], choices) if isinstance(error["input"], str) else ""
        # The message lists the choices already; the hint is only for a near miss.
        return loc, f"{dotted} must be {kind}, got {got}", suggestion if suggestion.startswith("did") else None
    if error["type"].endswith(("_type", "_parsing")):
        return loc, f"{dotted} must be {kind}, got {got}", None
    return loc, f"{dotted}: {_message(error)}", None


def show(value: object) -> str:
    """A value as the recipe spells it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _message(error: ErrorDetails) -> str:
    # A validator's ValueError reaches the user as its own words, without pydantic's prefix.
    return error["msg"].removeprefix("Value error, ")


def _field(cls: type[BaseModel], loc: KeyPath) -> tuple[KeyPath, Any]:
    """The part of a pydantic loc that names fields, and the last field's type."""
    annotation: Any = cls
    for depth, part in enumerate(loc):
        fields = getattr(annotation, "model_fields", None) if isinstance(annotation, type) else None
        if not fields or part not in fields:
            return loc[:depth], annotation
        annotation = fields[part].annotation
    return loc, annotation


def _kind(annotation: Any) -> str:
    """What a value of this type is called in a message: 'an integer', "one of 'sgd', 'adamw'"."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):  # `int | None`: null is the default, say what else
        return " or ".join(_kind(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping of settings"
    names: dict[Any, str] = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    return names.get(annotation, str(annotation))
