"""What a recipe is once read and checked: a ``Recipe`` of ``Stage`` entries, and its file format.

``Recipe.to_yaml`` writes the format that ``load_recipe`` reads, every setting filled in,
so that a recipe written out and read back compares equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from pydantic import BaseModel

from ..errors import EdgeResNetError

# The keys of a recipe file, in the order a resolved recipe writes them.
TOP_LEVEL = ("name", "description", "targets", "max_accuracy_drop", "stages")
# Top-1 points a recipe's artifacts may lose against the input model before the run fails.
DEFAULT_MAX_ACCURACY_DROP = 1.0
START_HINT = "start from a builtin recipe: edgeresnet recipes show qat-int8 > my-recipe.yaml"

KeyPath = tuple  # where a value sits in the recipe: ("stages", 2, "qat", "epochs")


class RecipeError(EdgeResNetError):
    """A recipe file, or an override of one, that does not validate."""


@dataclass(frozen=True)
class Stage:
    name: str  # a stage of edgeresnet.stages.registry.STAGES
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
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)  # list items indented under their key
