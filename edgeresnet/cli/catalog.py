"""What there is to choose from: the model zoo, the export targets, the recipes."""

from __future__ import annotations

import sys

import click

from .options import json_option
from .output import print_json


@click.command("models")
@click.option("--family", type=click.Choice(["cifar", "imagenet"]), help="Only this family.")
@json_option
def models_command(family, as_json):
    """The model zoo: architectures MODEL files are detected as, or --arch can name."""
    from ..models import family_of, list_models

    names = list_models(family)
    if as_json:
        print_json([{"name": n, "family": family_of(n)} for n in names])
    else:
        for name in names:
            click.echo(f"{name:<20} {family_of(name)}")


@click.command("targets")
@json_option
def targets_command(as_json):
    """Export targets that --target accepts, and why a file of one cannot be measured on this host.

    Every target exports anywhere; Core ML files run only on macOS and TensorRT engines only on
    an NVIDIA GPU (a Jetson), where `bench` measures them.
    """
    from ..export.targets import TARGETS
    from ..runner.bench import cannot_run_here

    why = {runtime: cannot_run_here(runtime) for runtime in {t.runtime for t in TARGETS.values()}}
    if as_json:
        print_json(
            [
                {
                    "name": t.name,
                    "runtime": t.runtime,
                    "precision": t.precision,
                    "description": t.description,
                    "runs_here": why[t.runtime] is None,
                    "why_not": why[t.runtime],
                }
                for t in TARGETS.values()
            ]
        )
    else:
        for target in TARGETS.values():
            click.echo(f"{target.name:<14} {target.description}")
        for runtime in sorted(r for r in why if why[r] is not None):  # every target exports; these don't run here
            names = ", ".join(t.name for t in TARGETS.values() if t.runtime == runtime)
            click.echo(f"\nnot measured on this host: {names}: {why[runtime]}")


@click.group("recipes")
def recipes_group():
    """Compression recipes: which stages run, in which order, with which settings, for which targets."""


@recipes_group.command("list")
@json_option
def recipes_list(as_json):
    """The builtin recipes."""
    from ..recipes import builtin_recipes, load_recipe

    recipes = [load_recipe(name) for name in builtin_recipes()]
    if as_json:
        print_json(
            [
                {
                    "name": r.name,
                    "stages": [s.name for s in r.stages],
                    "targets": list(r.targets),
                    "description": r.description,
                }
                for r in recipes
            ]
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("name", "stages", "targets", "description"):
        table.add_column(column)
    for r in recipes:
        table.add_row(
            r.name, " → ".join(s.name for s in r.stages) or "(export only)", ", ".join(r.targets), r.description
        )
    # Four columns with prose: not squeezed into 80 when stdout is a file or a pipe.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@recipes_group.command("show")
@click.argument("recipe", metavar="NAME_OR_PATH")
@click.option(
    "-o",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a setting, e.g. qat.epochs=2 or targets=[tflite-int8]; repeatable.",
)
@json_option
def recipes_show(recipe, overrides, as_json):
    """A recipe with every setting resolved, defaults included: a builtin NAME or a .yaml file."""
    from ..recipes import load_recipe

    resolved = load_recipe(recipe, overrides)
    if as_json:
        print_json(resolved.to_dict())
    else:
        click.echo(resolved.to_yaml(), nl=False)
