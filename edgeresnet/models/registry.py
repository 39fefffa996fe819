"""One place that knows every model by name, and one way to build them: ``create``.

Builders register themselves with ``@register(family)``; their keyword arguments are
the options a user may pass (``create("resnet56", num_classes=100)``). The family says
which preprocessing and input size fit: "imagenet" (224x224) or "cifar" (32x32).

``CATALOG`` names the zoo's builders and the module of each, so that listing the zoo
imports no torch (`edgeresnet models` answers at once) and building one imports only its
module. A registration must agree with the catalogue, and a name registers once.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edgeresnet.errors import ArchitectureError, closest

if TYPE_CHECKING:
    from torch import nn

Family = Literal["imagenet", "cifar"]

_CIFAR = ("resnet8", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
_IMAGENET = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)
# name -> (family, the module under edgeresnet.models that defines its builder)
CATALOG: dict[str, tuple[Family, str]] = {
    **{name: ("cifar", "cifar") for name in _CIFAR},
    **{name: ("imagenet", "resnet") for name in _IMAGENET},
}


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    family: Family


_MODELS: dict[str, _Entry] = {}


def register(family: Family) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a builder available under its function name."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is registered already ({_MODELS[name].builder.__module__})")
        known = CATALOG.get(name)
        if known is not None and known[0] != family:
            raise ValueError(f"{name} is a {known[0]} model in the catalogue, registered as {family}")
        CATALOG.setdefault(name, (family, builder.__module__.rpartition(".")[2]))
        _MODELS[name] = _Entry(builder, family)
        return builder

    return add


def list_models(family: Family | None = None) -> list[str]:
    return sorted(name for name, (kind, _) in CATALOG.items() if family in (None, kind))


def family_of(name: str) -> Family:
    if name not in CATALOG:
        raise ArchitectureError(f"unknown model {name!r}", hint=closest(name, CATALOG))
    return CATALOG[name][0]


def defaults(name: str) -> dict[str, Any]:
    """The options a model takes, with their default values."""
    parameters = inspect.signature(_entry(name).builder).parameters.values()
    return {p.name: p.default for p in parameters}


def create(name: str, **options: Any) -> nn.Module:
    valid = defaults(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ArchitectureError(
            f"{name} has no option {', '.join(map(repr, unknown))}",
            hint=f"valid options: {', '.join(valid)}",
        )
    for key, value in options.items():
        # Options often come from text (a CLI flag, a recipe): catch "num_classes=ten" here
        # rather than as a TypeError deep inside the builder.
        if type(value) is not type(valid[key]):
            raise ArchitectureError(
                f"option {key} of {name} takes {type(valid[key]).__name__} values, got {value!r}",
                hint=f"for example {key}={valid[key]}",
            )
    return _entry(name).builder(**options)


def parse(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``"resnet56:num_classes=100,shortcut=B"`` into a name and options.

    The same form is how an ArchSpec prints itself, and it needs no shell quoting.
    """
    name, _, rest = text.strip().partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ArchitectureError(
                f"cannot read option {item!r} in architecture {text!r}",
                hint="write options as name:key=value,key=value, e.g. resnet56:num_classes=100",
            )
        value = value.strip()
        options[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    return name, options


def _entry(name: str) -> _Entry:
    family_of(name)  # an unknown name fails here, with the closest known one
    if name not in _MODELS:  # its module registers it on import
        importlib.import_module(f"edgeresnet.models.{CATALOG[name][1]}")
    return _MODELS[name]
