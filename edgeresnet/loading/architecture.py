"""Weights to a network: the architecture detected (or named), built empty, loaded strictly.

``Intake`` is what every way of reading a model returns: the network and what its source
said about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.intake.layouts import Canonical, candidates
from edgeresnet.models.detect import detect, spec_of
from edgeresnet.models.spec import ArchSpec
from edgeresnet.models.weights import apply_state_dict, shapes_only
from edgeresnet.preprocess import Preprocess


@dataclass(frozen=True)
class Intake:
    """A model as it was read: the network, what it is, and what its source said about it."""

    module: nn.Module  # eval mode, float32
    spec: ArchSpec | None  # None: a module no layout describes, kept as its author wrote it
    layout: str  # the source layout (see intake.layouts), "edgeresnet" or "module"
    num_classes: int
    in_chans: int = 3
    labels: tuple[str, ...] | None = None  # from the source (Hugging Face id2label)
    preprocess: Preprocess | None = None  # from the source (Hugging Face preprocessor_config.json)
    input_shape: tuple[int, ...] | None = None  # the one shape a torch.export program takes

    @property
    def family(self) -> str:
        if self.spec is not None:
            return self.spec.family
        if self.input_shape is not None:
            return "cifar" if self.input_shape[-1] <= 64 else "imagenet"
        first = next((m for m in self.module.modules() if isinstance(m, nn.Conv2d)), None)
        return "cifar" if first is not None and first.kernel_size == (3, 3) and first.stride == (1, 1) else "imagenet"


def from_weights(
    state_dict: dict[str, Tensor], arch: str | ArchSpec | None, config: Mapping[str, Any] | None = None, **facts: Any
) -> Intake:
    if arch is not None:
        spec, canonical = spec_for(arch, state_dict), Canonical("edgeresnet", state_dict)
    else:
        spec, canonical = _detect(state_dict, config)
    model = _empty(spec)
    try:
        apply_state_dict(model, canonical.state_dict, str(spec))
    except ArchitectureError as error:
        raise ArchitectureError(error.message, hint=wrong_arch_hint(state_dict)) from None
    return Intake(model.eval(), spec, canonical.layout, spec.num_classes, in_chans_of(spec), **facts)


def build(spec: ArchSpec) -> nn.Module:
    if spec.plan is None:
        return spec.build()
    from edgeresnet.pruning.rebuild import rebuild

    return rebuild(spec.plan)


def _empty(spec: ArchSpec) -> nn.Module:
    """The architecture on the CPU with uninitialised weights, for a strict load to overwrite
    every one: running the initialisers on a ResNet-50's 25 M weights first costs a second.
    Buffers start at zero, the right value for the one kind a checkpoint may lack
    (num_batches_tracked)."""
    with shapes_only():
        module = build(spec)
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for buffer in module.buffers():
            buffer.zero_()
    return module


def _detect(state_dict: Mapping[str, Tensor], config: Mapping[str, Any] | None = None) -> tuple[ArchSpec, Canonical]:
    """The first source layout whose renamed weights a zoo or general ResNet fits exactly."""
    first_error = None
    for canonical in candidates(state_dict, config):
        try:
            return detect(canonical.state_dict, **canonical.known), canonical
        except ArchitectureError as error:
            first_error = first_error or ArchitectureError(
                f"{error.message} (read as {canonical.layout} weights)", error.hint
            )
    assert first_error is not None  # candidates() always offers at least one layout
    raise first_error


def in_chans_of(spec: ArchSpec) -> int:
    return spec.layout.in_chans if spec.layout is not None else 3


def spec_for(arch: str | ArchSpec | None, state_dict: Mapping[str, Tensor]) -> ArchSpec:
    if arch is None:
        return detect(state_dict)
    return arch if isinstance(arch, ArchSpec) else spec_of(arch)


def wrong_arch_hint(state_dict: Mapping[str, Tensor]) -> str:
    try:
        return f"the weights look like {detect(state_dict)}; omit --arch to use that"
    except ArchitectureError:
        return "check that --arch names the architecture the weights were trained as"
