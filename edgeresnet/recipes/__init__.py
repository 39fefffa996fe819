"""Recipes: which compression stages run, in which order, with which settings, for which targets.

A recipe is a small YAML file::

    name: qat-int8
    description: Quantization-aware training for int8.
    targets: [tflite-int8, openvino-int8]   # used when no --target is given
    max_accuracy_drop: 1.0                  # top-1 points an artifact may lose, else the run fails
    stages:                                 # in order; each is a name, or a name and its settings
      - qat:
          epochs: 3

Everything is checked before any work starts, and every problem is one line that names the
file and line (or the override) and how to fix it: a typo in a recipe must fail in a second,
not as a crash an hour into training.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import EdgeResNetError, closest

RECIPES_DIR = Path(__file__).resolve().parent
MAX_BYTES = 1_000_000  # a recipe is a few lines; anything this big is the wrong file
TOP_LEVEL = ("name", "description", "targets", "max_accuracy_drop", "stages")
# Top-1 points a recipe's artifacts may lose against the input model before the run fails.
DEFAULT_MAX_ACCURACY_DROP = 1.0
# Stages run in this order. ptq and qat share a rank: both set the int8 ranges, so a recipe has one.
RANK = {"prune": 0, "distill": 1, "ptq": 2, "qat": 2}
START_HINT = "start from a builtin recipe: edgeresnet recipes show qat-int8 > my-recipe.yaml"


class RecipeError(EdgeResNetError):
    """A recipe file, or an override of one, that does not validate."""


@dataclass(frozen=True)
class Stage:
    name: str  # "prune", "distill", "ptq" or "qat"
    config: BaseModel  # that stage's validated config


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    targets: tuple[str, ...]  # the default targets, when the user names none
    stages: tuple[Stage, ...]
    # Where it was read (a path, or "builtin:NAME"); not part of what the recipe is, so that
    # a recipe written out and read back compares equal.
    source: str = field(compare=False)
    # Points of top-1 each artifact may lose against the input model (None: no check).
    max_accuracy_drop: float | None = DEFAULT_MAX_ACCURACY_DROP
    overrides: tuple[str, ...] = field(default=(), compare=False)  # the -o settings applied to it

    def stage(self, name: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    def to_dict(self) -> dict:
        """The recipe in its file format, every setting of every stage filled in."""
        return {
            "name": self.name,
            "description": self.description,
            "targets": list(self.targets),
            "max_accuracy_drop": self.max_accuracy_drop,
            "stages": [{stage.name: stage.config.model_dump(mode="json")} for stage in self.stages],
        }

    def to_yaml(self) -> str:
        data = self.to_dict()
        header = f"# Recipe {self.name!r} from {self.source}, resolved: every setting, defaults included.\n"
        if self.overrides:
            header += f"# Overrides applied: {' '.join('-o ' + text for text in self.overrides)}\n"
        # Block style, but the target list on one line, as the shipped recipes write it.
        head = yaml.dump(
            {key: data[key] for key in ("name", "description", "targets", "max_accuracy_drop")},
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=None,
            width=4096,
        )
        stages = yaml.dump({"stages": data["stages"]}, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
        return header + head + stages


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # list items indented under their key


def builtin_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """A builtin recipe by name, or a recipe file, validated, with `stage.key=value` overrides applied."""
    path, label, source = _locate(name_or_path)
    draft = _parse(_read(path, label), label)
    for text in overrides:
        _apply_override(draft, text)
    return dataclasses.replace(_build(draft, source), overrides=tuple(overrides))


# --- finding and reading -------------------------------------------------------------------


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
    if text in builtin_recipes():
        path = RECIPES_DIR / f"{text}.yaml"
        return path, str(path), f"builtin:{text}"
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


# --- YAML, with the line of every key ------------------------------------------------------

KeyPath = tuple  # where a value sits in the recipe: ("stages", 2, "qat", "epochs")


@dataclass
class _Draft:
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
        return self.values["stages"]  # [name, settings] pairs, once _parse has normalised them


def _parse(text: str, label: str) -> _Draft:
    # compose, not load: the nodes keep their lines; SafeLoader: no tags that build objects.
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        where: dict[KeyPath, str] = {}
        values = None if root is None else _plain(root, (), where, lambda node: f"{label}:{_line(node)}")
    except yaml.YAMLError as error:
        raise _syntax_error(error, label) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise RecipeError(f"{label}: nested too deeply to be a recipe", "is this the right file?") from None
    if not isinstance(values, dict):
        got = "nothing" if root is None else "a list" if isinstance(values, list) else f"the value {_show(values)}"
        line = 1 if root is None else _line(root)
        raise RecipeError(f"{label}:{line}: a recipe is a mapping of {', '.join(TOP_LEVEL)}; got {got}", START_HINT)
    where[()] = f"{label}:{_line(root)}"
    draft = _Draft(values, where)
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
    values["stages"] = _stage_list(draft)
    _check_order(draft)
    return draft


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


MERGE_TAG = "tag:yaml.org,2002:merge"


def _plain(node: yaml.Node, path: KeyPath, where: dict, locate: Callable[[yaml.Node], str], seen=None) -> Any:
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
            items.append(_plain(item, path + (index,), where, locate, seen))
        return items
    mapping: dict = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise RecipeError(f"{locate(key_node)}: a key must be a plain word", "write `key: value`")
        key = _plain(key_node, path, where, locate, seen)
        if key in mapping:
            raise RecipeError(f"{locate(key_node)}: key {key!r} given twice", "keep one of the two")
        where[path + (key,)] = locate(key_node)
        mapping[key] = _plain(value_node, path + (key,), where, locate, seen)
    return mapping


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


# --- stages: names and order ---------------------------------------------------------------


def _stage_list(draft: _Draft) -> list[list]:
    raw = draft.values["stages"]
    if raw is None:
        return []
    if not isinstance(raw, list):
        draft.fail(
            ("stages",),
            f"stages must be a list, got {_show(raw)}",
            "put each stage on its own line: `- ptq`, or `- qat:` with its settings indented below",
        )
    return [_stage_item(draft, index, item) for index, item in enumerate(raw)]


def _stage_item(draft: _Draft, index: int, item) -> list:
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
            f"a stage is a name, or a name and its settings; got {_show(item)}",
            "e.g. `- ptq` or `- qat: {epochs: 3}`",
        )
    if name not in RANK:
        draft.fail(path, f"unknown stage {name!r}", closest(str(name), RANK))
    if settings is None:
        return [name, {}]  # `- ptq` or `- ptq:`: every default
    if not isinstance(settings, dict):
        draft.fail(
            path + (name,),
            f"stage {name!r} takes settings as `key: value` lines, got {_show(settings)}",
            f"e.g. `- {name}:` and below it, indented, `seed: 0`",
        )
    return [name, settings]


def _check_order(draft: _Draft) -> None:
    names = [name for name, _ in draft.stages]
    for index, name in enumerate(names):
        for earlier in names[:index]:
            path = ("stages", index)
            if earlier == name:
                draft.fail(path, f"stage {name!r} appears twice", "give it once, with all its settings")
            if {earlier, name} == {"ptq", "qat"}:
                draft.fail(
                    path,
                    "stages 'ptq' and 'qat' both set the int8 ranges: ptq from calibration images, qat by training",
                    "keep qat for the best int8 accuracy, or ptq to skip training",
                )
            if RANK[earlier] > RANK[name]:
                order = sorted(dict.fromkeys(names), key=RANK.__getitem__)
                draft.fail(
                    path,
                    f"stage {name!r} cannot come after {earlier!r}: {_why_before(name, earlier)}",
                    f"order stages {', '.join(order)}",
                )


def _why_before(name: str, later: str) -> str:
    """Why stage `name` must run before stage `later`."""
    if later in ("ptq", "qat"):
        doing = {"prune": "pruning", "distill": "distillation"}[name]
        return f"{later} fits quantization to the weights {doing} would change"
    return "distill recovers the accuracy pruning costs, so it must train the pruned model"


# --- overrides -----------------------------------------------------------------------------


def _apply_override(draft: _Draft, text: str) -> None:
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
        if head in RANK:
            raise RecipeError(f"{where}: name a setting of the stage", f"e.g. {head}.seed=1")
        if head not in TOP_LEVEL:
            raise RecipeError(f"{where}: unknown key {head!r}", closest(head, [k for k in TOP_LEVEL if k != "stages"]))
        draft.values[head] = value
        _mark(draft, (head,), where)
        return
    if head not in present:
        if head not in RANK:
            raise RecipeError(f"{where}: unknown stage {head!r}", closest(head, present or RANK))
        raise RecipeError(
            f"{where}: the recipe has no stage {head!r}, only {', '.join(present) or 'none'}",
            "to add a stage, edit a copy of the recipe: edgeresnet recipes show NAME > my-recipe.yaml",
        )
    index = present.index(head)
    path, settings = ("stages", index, head), draft.stages[index][1]
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


def _override_value(raw: str, where: str):
    """The value of an override, read as YAML: 2, 0.5, true, null, [a, b] or text."""
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        return None if node is None else _plain(node, (), {}, lambda _: where)
    except yaml.YAMLError as error:
        raise RecipeError(
            f"{where}: the value is not valid YAML ({getattr(error, 'problem', error)})",
            "quote it, e.g. description='a: b'",
        ) from None


def _mark(draft: _Draft, path: KeyPath, where: str) -> None:
    """Errors about `path`, and anything under it, now name the override, not the file."""
    for known in [known for known in draft.where if known[: len(path)] == path]:
        del draft.where[known]
    draft.where[path] = where


# --- validation ----------------------------------------------------------------------------


def _build(draft: _Draft, source: str) -> Recipe:
    values = draft.values
    name = values["name"]
    if not isinstance(name, str) or not name.strip():
        draft.fail(("name",), f"name must be non-empty text, got {_show(name)}", "e.g. `name: my-recipe`")
    description = values.get("description")
    description = "" if description is None else description
    if not isinstance(description, str):
        draft.fail(("description",), f"description must be text, got {_show(description)}", "put it in quotes")
    configs = _config_classes()
    stages = tuple(
        Stage(stage, _stage_config(draft, index, stage, settings, configs[stage]))
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


def _max_accuracy_drop(draft: _Draft) -> float | None:
    if "max_accuracy_drop" not in draft.values:
        return DEFAULT_MAX_ACCURACY_DROP
    value = draft.values["max_accuracy_drop"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        draft.fail(
            ("max_accuracy_drop",),
            f"max_accuracy_drop must be top-1 points from 0 to 100, got {_show(value)}",
            "e.g. `max_accuracy_drop: 1.0`, or `max_accuracy_drop: null` for no check",
        )
    return float(value)


def _config_classes() -> dict[str, type[BaseModel]]:
    # Here, not at the top: the prune stage imports torch, which `import edgeresnet.recipes` need not.
    from ..stages.distill import DistillConfig
    from ..stages.prune import PruneConfig
    from ..stages.ptq import PtqConfig
    from ..stages.qat import QatConfig

    return {"prune": PruneConfig, "distill": DistillConfig, "ptq": PtqConfig, "qat": QatConfig}


def _targets(draft: _Draft) -> tuple[str, ...]:
    targets = draft.values.get("targets")
    if targets is None:
        return ()
    if not isinstance(targets, list):
        draft.fail(("targets",), f"targets must be a list, got {_show(targets)}", "e.g. targets: [tflite-int8]")
    for index, target in enumerate(targets):
        _check_target(draft, ("targets", index), target)
        if target in targets[:index]:
            draft.fail(("targets", index), f"target {target!r} is listed twice", "list it once")
    return tuple(targets)


def _check_target(draft: _Draft, path: KeyPath, target, setting: str = "") -> None:
    from ..export.targets import TARGETS

    if not isinstance(target, str) or target not in TARGETS:
        draft.fail(path, f"unknown target {_show(target)}{setting}", closest(str(target), TARGETS))


def _stage_config(draft: _Draft, index: int, stage: str, settings: dict, cls: type[BaseModel]) -> BaseModel:
    path = ("stages", index, stage)
    _check_keys(draft, path, settings, cls, f"stage {stage!r}")
    try:
        # strict: `epochs: 2.5`, `macs: "2"` or `remove_blocks: 1` is a mistake, not something to coerce.
        config = cls.model_validate(settings, strict=True)
    except ValidationError as error:
        loc, message, hint = _explain(error.errors()[0], cls, stage)
        # A check of the whole stage that an override made fail is the override's doing.
        draft.fail(path + loc if loc else draft.last_override(path), message, hint)
    if stage == "prune":
        _check_target(draft, path + ("latency", "target"), config.latency.target, " in prune.latency.target")
    return config


def _check_keys(draft: _Draft, path: KeyPath, settings: dict, cls: type[BaseModel], what: str) -> None:
    """Unknown keys, nested ones too, with the key they were probably meant to be."""
    fields = cls.model_fields
    for key, value in settings.items():
        if key not in fields:
            draft.fail(path + (key,), f"unknown key {key!r} in {what}", closest(str(key), fields))
        nested = fields[key].annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel) and isinstance(value, dict):
            dotted = ".".join(map(str, (*path[2:], key)))
            _check_keys(draft, path + (key,), value, nested, repr(dotted))


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _explain(error: dict, cls: type[BaseModel], stage: str) -> tuple[KeyPath, str, str | None]:
    """A pydantic error as (path within the stage, one line, a fix)."""
    loc, annotation = _field(cls, tuple(error["loc"]))
    if not loc:  # a check of the whole stage, e.g. prune's "exactly one target"
        return (), f"stage {stage!r}: {error['msg'].removeprefix('Value error, ')}", None
    dotted = ".".join(map(str, (stage, *loc)))
    kind, got = _kind(annotation), _show(error["input"])
    if error["type"] in _BOUNDS:
        sign, key = _BOUNDS[error["type"]]
        return loc, f"{dotted} must be {kind} {sign} {error['ctx'][key]}, got {got}", None
    if error["type"] == "literal_error":
        choices = [str(choice) for choice in typing.get_args(annotation)]
        suggestion = closest(error["input"], choices) if isinstance(error["input"], str) else ""
        # The message lists the choices already; the hint is only for a near miss.
        return loc, f"{dotted} must be {kind}, got {got}", suggestion if suggestion.startswith("did") else None
    if error["type"].endswith(("_type", "_parsing")):
        return loc, f"{dotted} must be {kind}, got {got}", None
    return loc, f"{dotted}: {error['msg'].removeprefix('Value error, ')}", None


def _field(cls: type[BaseModel], loc: KeyPath) -> tuple[KeyPath, Any]:
    """The part of a pydantic loc that names fields, and the last field's type."""
    annotation: Any = cls
    for depth, part in enumerate(loc):
        fields = getattr(annotation, "model_fields", None) if isinstance(annotation, type) else None
        if not fields or part not in fields:
            return loc[:depth], annotation
        annotation = fields[part].annotation
    return loc, annotation


def _kind(annotation) -> str:
    """What a value of this type is called in a message: 'an integer', "one of 'sgd', 'adamw'"."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):  # `int | None`: null is the default, say what else
        return " or ".join(_kind(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping of settings"
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(annotation, str(annotation))


def _show(value) -> str:
    """A value as the recipe spells it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)
