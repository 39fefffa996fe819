"""Recipes: the builtins load and round-trip; every mistake is one line naming the file and line."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from edgeresnet.cli import main
from edgeresnet.recipes import RecipeError, builtin_recipes, load_recipe
from helpers import error_line, run_cli

BUILTINS = ["export-fp16-coreml", "prune-distill-qat-int8", "ptq-int8", "qat-int8", "qat-int8-openvino"]

GOOD = """\
# a comment
name: mine
description: Prune, distill, quantize.
targets: [tflite-int8]
stages:
  - prune:
      macs: 2.0
  - distill:
      epochs: 15
  - qat:
      epochs: 3
"""


def write(tmp_path, text: str, name: str = "recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(name_or_path, *overrides) -> str:
    with pytest.raises(RecipeError) as raised:
        load_recipe(name_or_path, overrides)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_builtins_are_the_shipped_files():
    assert builtin_recipes() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_round_trips_through_yaml(tmp_path, name):
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.source == f"builtin:{name}"
    assert recipe.description and recipe.targets
    text = recipe.to_yaml()
    assert text.startswith("#") and f"builtin:{name}" in text.splitlines()[0]
    again = load_recipe(write(tmp_path, text, f"{name}.yaml"))
    assert again == recipe
    assert again.to_dict() == recipe.to_dict()


def test_flagship_recipe_prunes_distills_and_trains_for_int8():
    recipe = load_recipe("prune-distill-qat-int8")
    assert [stage.name for stage in recipe.stages] == ["prune", "distill", "qat"]
    assert recipe.stage("prune").config.macs == 2.0
    assert recipe.stage("ptq") is None
    assert recipe.targets == ("tflite-int8",)


def test_other_builtins():
    assert load_recipe("export-fp16-coreml").stages == ()
    assert load_recipe("qat-int8-openvino").stage("qat").config.scheme == "openvino"
    assert load_recipe("ptq-int8").stage("ptq").config.size == 256  # `- ptq`: all defaults
    assert load_recipe("qat-int8").targets == ("tflite-int8", "openvino-int8")


def test_renamed_builtins_load_by_their_old_names():
    for old, new in (("openvino-int8", "qat-int8-openvino"), ("coreml-fp16", "export-fp16-coreml")):
        recipe = load_recipe(old)
        assert recipe == load_recipe(new) and recipe.name == new and recipe.source == f"builtin:{new}"


def test_to_dict_fills_in_every_default():
    stages = load_recipe("qat-int8").to_dict()["stages"]
    assert stages[0]["qat"]["epochs"] == 3
    assert stages[0]["qat"]["batch_size"] == 128 and stages[0]["qat"]["limit"] is None


def test_a_file_by_path_with_bare_and_empty_stages(tmp_path):
    path = write(tmp_path, """\
        name: two
        stages:
          - distill:
          - ptq
        """, "two.yml")
    recipe = load_recipe(str(path))
    assert recipe.source == str(path)
    assert recipe.description == "" and recipe.targets == ()
    assert recipe.stage("distill").config.epochs == 10


def test_overrides_change_values(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD), ["qat.epochs=2", "prune.latency.target=openvino-int8",
                                                 "targets=[tflite-int8, openvino-int8]", "distill.limit=null"])
    assert recipe.stage("qat").config.epochs == 2
    assert recipe.stage("prune").config.latency.target == "openvino-int8"
    assert recipe.stage("prune").config.latency.runs == 200  # the rest of the nested settings keep their defaults
    assert recipe.targets == ("tflite-int8", "openvino-int8")
    assert recipe.stage("distill").config.limit is None
    # A bare stage takes overrides too.
    assert load_recipe("ptq-int8", ["ptq.size=64"]).stage("ptq").config.size == 64


def test_max_accuracy_drop_defaults_overrides_and_round_trips(tmp_path):
    assert load_recipe("qat-int8").max_accuracy_drop == 1.0
    assert load_recipe(write(tmp_path, GOOD)).max_accuracy_drop == 1.0  # not given: the default guard
    assert load_recipe("qat-int8", ["max_accuracy_drop=0.25"]).max_accuracy_drop == 0.25
    off = load_recipe("qat-int8", ["max_accuracy_drop=null"])
    assert off.max_accuracy_drop is None
    written = write(tmp_path, off.to_yaml(), "resolved.yaml")
    assert "max_accuracy_drop: null" in written.read_text() and load_recipe(written) == off


# (recipe text, line, what the message says, what the fix says)
MALFORMED = {
    "accuracy guard out of range": ("""\
        name: x
        max_accuracy_drop: -1
        stages: []
        """, 2, "max_accuracy_drop must be top-1 points from 0 to 100, got -1", "for no check"),
    "accuracy guard not a number": ("""\
        name: x
        max_accuracy_drop: one point
        stages: []
        """, 2, "max_accuracy_drop must be top-1 points from 0 to 100", "e.g. `max_accuracy_drop: 1.0`"),
    "unknown stage": ("""\
        name: x
        stages:
          - prune:
              ratio: 0.5
          - qta:
              epochs: 3
        """, 5, "unknown stage 'qta'", "did you mean 'qat'?"),
    "unknown key": ("""\
        name: x
        stages:
          - qat:
              epoch: 3
        """, 4, "unknown key 'epoch' in stage 'qat'", "did you mean 'epochs'"),
    "unknown key, nothing close": ("""\
        name: x
        stages:
          - ptq:
              zzzzzz: 3
        """, 4, "unknown key 'zzzzzz' in stage 'ptq'", "choose one of: batch_size, bias_correction, percentile, ranges, rounding, rounding_iterations, seed, size"),
    "nested unknown key": ("""\
        name: x
        stages:
          - prune:
              ratio: 0.5
              latency:
                target: tflite-int8
                runz: 50
        """, 7, "unknown key 'runz' in 'prune.latency'", "did you mean 'runs'"),
    "unknown top-level key": ("""\
        name: x
        stage: []
        """, 2, "unknown top-level key 'stage'", "did you mean 'stages'"),
    "wrong type": ("""\
        name: x
        stages:
          - distill:
              epochs: 3
              lr: fast
        """, 5, "distill.lr must be a number, got 'fast'", "must be a number"),
    "float for an integer": ("""\
        name: x
        stages:
          - qat:
              epochs: 2.5
        """, 4, "qat.epochs must be an integer, got 2.5", "must be an integer"),
    "out of range": ("""\
        name: x
        description: too few epochs
        targets: [tflite-int8]
        stages:
          - prune:
              macs: 2.0
          - distill: {}
          - qat:
              epochs: 0
        """, 9, "qat.epochs must be an integer >= 1, got 0", ">= 1"),
    "nested out of range": ("""\
        name: x
        stages:
          - prune:
              ratio: 0.5
              latency:
                runs: 5
        """, 6, "prune.latency.runs must be an integer >= 10, got 5", ">= 10"),
    "not one of": ("""\
        name: x
        stages:
          - qat:
              scheme: tflit
        """, 4, "qat.scheme must be one of 'auto', 'tflite', 'openvino', 'coreml', got 'tflit'",
        "did you mean 'tflite'?"),
    "whole-stage check": ("""\
        name: x
        stages:

          - prune:
              ratio: 0.5
              macs: 2.0
        """, 4, "stage 'prune': give exactly one target of ratio, macs and latency_ms", "give exactly one"),
    "duplicate stage": ("""\
        name: x
        stages:
          - qat:
              epochs: 2
          - qat:
              epochs: 3
        """, 5, "stage 'qat' appears twice", "give it once"),
    "impossible order": ("""\
        name: x
        stages:
          - distill:
              epochs: 2
          - qat
          - prune:
              macs: 2.0
        """, 6, "stage 'prune' cannot come after 'distill': distill recovers the accuracy pruning costs",
        "order stages prune, distill, qat"),
    "prune after qat": ("""\
        name: x
        stages:
          - qat
          - prune: {ratio: 0.5}
        """, 4, "stage 'prune' cannot come after 'qat': qat fits quantization to the weights pruning would change",
        "order stages prune, qat"),
    "ptq with qat": ("""\
        name: x
        stages:
          - ptq
          - qat
        """, 4, "stages 'ptq' and 'qat' both set the int8 ranges", "keep qat"),
    "unknown target": ("""\
        name: x
        targets:
          - tflite-int8
          - openvino-in8
        stages: []
        """, 4, "unknown target 'openvino-in8'", "did you mean 'openvino-int8'"),
    "unknown latency target": ("""\
        name: x
        stages:
          - prune:
              latency_ms: 3
              latency: {target: tflite-in8}
        """, 5, "unknown target 'tflite-in8' in prune.latency.target", "did you mean 'tflite-int8'"),
    "targets not a list": ("""\
        name: x
        targets: tflite-int8
        stages: []
        """, 2, "targets must be a list, got 'tflite-int8'", "e.g. targets: [tflite-int8]"),
    "not a mapping": ("""\
        # a list, not a recipe
        - name: x
        """, 2, "a recipe is a mapping of name, description, targets, max_accuracy_drop, stages; got a list", "recipes show"),
    "empty file": ("# nothing here\n", 1, "got nothing", "recipes show"),
    "YAML syntax error": ("""\
        name: x
        stages:
          - qat:
              epochs: 3
             lr: 0.1
        """, 5, "not valid YAML", "check the indentation"),
    "unclosed bracket": ("""\
        name: x
        targets: [tflite-int8
        stages: []
        """, 3, "not valid YAML", "check the indentation"),
    "settings indented level with the stage": ("""\
        name: x
        stages:
          - prune:
            macs: 2.0
        """, 3, "a stage entry has one key, the stage's name; this one has 'prune', 'macs'", "indent"),
    "settings not a mapping": ("""\
        name: x
        stages:
          - qat: 3
        """, 3, "stage 'qat' takes settings as `key: value` lines, got 3", "e.g."),
    "missing name": ("""\
        # no name
        stages: []
        """, 2, "the recipe has no name", "add a line such as `name: my-recipe`"),
    "key given twice": ("""\
        name: x
        stages: []
        name: y
        """, 3, "key 'name' given twice", "keep one"),
    "alias": ("""\
        name: &n x
        description: *n
        stages: []
        """, 2, "aliases (*name) and merge keys (<<) are not allowed", "write the values out"),
    "merge key": ("""\
        name: x
        stages:
          - qat:
              <<: {epochs: 3}
        """, 4, "aliases (*name) and merge keys (<<) are not allowed", "write the values out"),
    "object tag": ("""\
        name: x
        stages:
          - ptq:
              seed: !!python/object/apply:os.system [echo hi]
        """, 4, "the tag !!python/object/apply:os.system is not allowed", "remove the tag"),
    "scalar tag": ("""\
        name: !!python/name:os.system x
        stages: []
        """, 1, "could not determine a constructor for the tag", "remove the tag"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_recipe_names_file_line_and_fix(tmp_path, case):
    text, line, says, fix = MALFORMED[case]
    path = write(tmp_path, text, "bad.yaml")
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert says in message and fix in message, message


# (overrides, what the message says, what the fix says); the recipe is GOOD
BAD_OVERRIDES = {
    "no =": (["qat.epochs"], "override 'qat.epochs': an override is KEY=VALUE", "e.g. qat.epochs=2"),
    "unknown key": (["qat.epoch=2"], "override 'qat.epoch=2': unknown key 'epoch' in stage 'qat'",
                    "did you mean 'epochs'"),
    "nested unknown key": (["prune.latency.runz=3"], "override 'prune.latency.runz=3': unknown key 'runz'",
                           "did you mean 'runs'"),
    "stage not in the recipe": (["ptq.size=3"], "override 'ptq.size=3': the recipe has no stage 'ptq'",
                                "edit a copy"),
    "unknown stage": (["qta.epochs=3"], "override 'qta.epochs=3': unknown stage 'qta'", "did you mean 'qat'?"),
    "out of range": (["qat.epochs=2", "qat.epochs=0"], "override 'qat.epochs=0': qat.epochs must be an integer >= 1",
                     ">= 1"),
    "whole-stage check": (["prune.ratio=0.5"], "override 'prune.ratio=0.5': stage 'prune': give exactly one",
                          "give exactly one"),
    "unknown target": (["targets=[tflite-int9]"], "override 'targets=[tflite-int9]': unknown target 'tflite-int9'",
                       "did you mean 'tflite-int8'"),
    "bad value": (["qat.epochs=[1"], "override 'qat.epochs=[1': the value is not valid YAML", "quote it"),
    "stages": (["stages=[]"], "override 'stages=[]': stages cannot be overridden", "STAGE.KEY=VALUE"),
}


@pytest.mark.parametrize("case", BAD_OVERRIDES)
def test_bad_override_names_the_override(tmp_path, case):
    overrides, says, fix = BAD_OVERRIDES[case]
    message = error_of(write(tmp_path, GOOD), *overrides)
    assert message.startswith(says), message
    assert fix in message, message


def test_override_of_a_file_value_no_longer_blames_the_file(tmp_path):
    # epochs: 15 is on line 9 of the file; the override replaced it.
    message = error_of(write(tmp_path, GOOD), "distill.epochs=-1")
    assert message.startswith("override 'distill.epochs=-1': distill.epochs must be an integer >= 1, got -1")


def test_file_mistakes_win_over_overrides(tmp_path):
    path = write(tmp_path, MALFORMED["unknown stage"][0])
    assert error_of(path, "prune.ratio=0.4").startswith(f"{path}:5: unknown stage 'qta'")


def test_unknown_recipe_name_suggests_a_builtin():
    message = error_of("qat-int9")
    assert "unknown recipe 'qat-int9'" in message and "did you mean 'qat-int8'" in message
    assert "choose one of: " + ", ".join(BUILTINS) in error_of("nothing-like-it")


def test_missing_file_and_oversized_file(tmp_path):
    assert "not found" in error_of(tmp_path / "nope.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("name: x\nstages: []\n" + "# padding\n" * 120_000)
    assert error_of(big).startswith(f"{big}: 1.2 MB is too big for a recipe")


def test_cli_recipes_list_json():
    result = run_cli("recipes", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [entry["name"] for entry in listed] == BUILTINS
    flagship = next(entry for entry in listed if entry["name"] == "prune-distill-qat-int8")
    assert flagship["stages"] == ["prune", "distill", "qat"] and flagship["targets"] == ["tflite-int8"]


def test_cli_recipes_list_table():
    result = CliRunner().invoke(main, ["recipes", "list"])
    assert result.exit_code == 0, result.output
    assert "prune → distill → qat" in result.output


def test_cli_recipes_show_with_override(tmp_path):
    result = run_cli("recipes", "show", "qat-int8", "-o", "qat.epochs=2")
    assert result.returncode == 0, result.stderr
    assert "epochs: 2" in result.stdout
    saved = write(tmp_path, result.stdout, "saved.yaml")
    assert load_recipe(saved) == load_recipe("qat-int8", ["qat.epochs=2"])


def test_cli_recipes_show_json():
    result = CliRunner().invoke(main, ["recipes", "show", "qat-int8", "--set", "qat.epochs=2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == load_recipe("qat-int8", ["qat.epochs=2"]).to_dict()


def test_cli_recipes_show_fails_in_one_line(tmp_path):
    path = write(tmp_path, MALFORMED["unknown key"][0], "bad.yaml")
    line = error_line(run_cli("recipes", "show", path, "-o", "qat.epochs=2"))
    assert line.startswith(f"error: {path}:4: unknown key 'epoch' in stage 'qat'"), line


def test_example_recipes_of_the_repository_resolve():
    from pathlib import Path

    from edgeresnet.recipes import load_recipe

    examples = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))
    assert len(examples) >= 3
    for path in examples:
        recipe = load_recipe(str(path))
        assert recipe.name == path.stem and recipe.targets, path
        assert path.read_text().startswith("# "), f"{path.name} needs a header comment saying what it is for"
