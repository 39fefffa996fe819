"""Loading a recipe: a builtin by name or a file by path, read, checked, with overrides applied.

The builtin recipes are the ``*.yaml`` files beside this module (package data). Checks run
in the order a user fixes things: the file, its YAML, its stages and their order, each
override, then every value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..errors import closest
from .draft import parse
from .overrides import apply_override
from .recipe import Recipe, RecipeError
from .stage_list import read_stages
from .validate import build

RECIPES_DIR = Path(__file__).resolve().parent
MAX_BYTES = 1_000_000  # a recipe is a few lines; anything this big is the wrong file
# Builtin recipes once named after their only target, by the name that says what they do.
# The old names still load (the recipe loaded carries its new name).
RENAMED = {"openvino-int8": "qat-int8-openvino", "coreml-fp16": "export-fp16-coreml"}


def builtin_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """A builtin recipe by name, or a recipe file, validated, with `stage.key=value` overrides applied.

    Args:
        name_or_path: a builtin recipe's name ("ptq-int8", "qat-int8", "prune-distill-qat-int8",
            ...) or the path of a YAML file (a Path, or a string ending in .yaml or holding a "/").
        overrides: settings to change, as "stage.key=value" (what -o takes).

    Raises RecipeError for an unknown name, a file that cannot be read, or an invalid setting.

    Example::

        recipe = edgeresnet.load_recipe("prune-distill-qat-int8", ["distill.epochs=15"])
        print(recipe.targets, [stage.name for stage in recipe.stages])
    """
    path, label, source = _locate(name_or_path)
    draft = parse(_read(path, label), label)
    read_stages(draft)
    for text in overrides:
        apply_override(draft, text)
    return dataclasses.replace(build(draft, source), overrides=tuple(overrides))


def _locate(name_or_path: str | Path) -> tuple[Path, str, str]:
    """The file, the name errors give it, and the recipe's source."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(name_or_path)
        if not path.is_file():
            problem = "is a directory" if path.is_dir() else "not found"
            raise RecipeError(
                f"recipe file {text} {problem}",
                f"check the path, or use a builtin recipe ({', '.join(builtin_recipes())})",
            )
        return path, text, text
    name = RENAMED.get(text, text)
    if name in builtin_recipes():
        path = RECIPES_DIR / f"{name}.yaml"
        return path, str(path), f"builtin:{name}"
    raise RecipeError(
        f"unknown recipe {text!r}: neither a builtin recipe nor a .yaml file", closest(text, builtin_recipes())
    )


def _read(path: Path, label: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RecipeError(
                f"{label}: {size / 1e6:.1f} MB is too big for a recipe (at most 1 MB)",
                "is this the right file? a recipe is a few lines of YAML",
            )
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"{label}: not UTF-8 text", "save the recipe as UTF-8 YAML") from None
    except OSError as error:
        raise RecipeError(f"{label}: cannot read it ({error.strerror})", "check the file's permissions") from None
