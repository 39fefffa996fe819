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

    recipe.py      Recipe and Stage, and the file format (to_yaml writes what load_recipe reads)
    load.py        load_recipe: a builtin by name or a file, then each check below in turn
    draft.py       the YAML as plain values, with the file and line of every key
    stage_list.py  the stages: known names, each once, in order (rules from stages/registry.py)
    overrides.py   -o/--set KEY=VALUE, applied to the values before they are checked
    validate.py    every value checked, each stage's settings by its config class
    messages.py    a pydantic error as one line: `invalid` for the CLI's flags, `explain` for recipes
"""

from .load import RECIPES_DIR as RECIPES_DIR
from .load import builtin_recipes as builtin_recipes
from .load import load_recipe as load_recipe
from .messages import invalid as invalid
from .recipe import DEFAULT_MAX_ACCURACY_DROP as DEFAULT_MAX_ACCURACY_DROP
from .recipe import Recipe as Recipe
from .recipe import RecipeError as RecipeError
from .recipe import Stage as Stage
