"""An nn.Module the caller passes: rebuilt as one of ours where its weights fit and it computes
the same function, otherwise kept as its author wrote it, if it is a ResNet at all."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.models.spec import ArchSpec
from edgeresnet.models.weights import mismatch, shapes_only

from .architecture import Intake, build, from_weights, in_chans_of, spec_for, wrong_arch_hint
from .state_dict import clean_state_dict

# How far a rebuilt network may differ from the caller's module on the same input.
_EQUIVALENT_RTOL, _EQUIVALENT_ATOL = 1e-4, 1e-5


def from_module(module: nn.Module, arch: str | ArchSpec | None) -> Intake:
    """A module object. One of ours is copied; one whose weights a layout describes is rebuilt as
    ours when it computes the same function (checked on an input), so that every stage knows its
    structure; anything else is kept as its author wrote it (copied, so theirs stays as it was)."""
    from edgeresnet.models.cifar import CifarResNet
    from edgeresnet.models.general import GeneralResNet
    from edgeresnet.models.resnet import ResNet

    hub_config = _hub_config(module)
    origin = type(module).__name__
    state_dict = clean_state_dict(module.state_dict(), origin)
    if arch is not None:
        spec = spec_for(arch, state_dict)
        with shapes_only():
            problem = mismatch(build(spec).state_dict(), state_dict)
        if problem:  # detect() checks the fit itself; a named arch has not been checked
            raise ArchitectureError(f"the module does not fit {spec}: {problem}", hint=wrong_arch_hint(state_dict))
        return Intake(copy.deepcopy(module).float().eval(), spec, "edgeresnet", spec.num_classes, in_chans_of(spec))
    own = isinstance(module, (ResNet, CifarResNet, GeneralResNet))
    try:
        intake = from_weights(state_dict, None, hub_config, labels=_hub_labels(hub_config))
    except ArchitectureError:
        if own or hub_config is not None:
            raise
        return _opaque(module, origin)
    if own:
        return Intake(
            copy.deepcopy(module).float().eval(), intake.spec, "edgeresnet", intake.num_classes, intake.in_chans
        )
    if _same_function(module, intake, hub_config is not None):
        return intake
    if hub_config is not None:
        raise ArchitectureError(
            f"the {origin} computes something the ResNet rebuilt from its weights does not",
            "save it with save_pretrained() and report the folder as a bug",
        )
    return _opaque(module, origin)


def _hub_config(module: nn.Module) -> dict[str, Any] | None:
    config = getattr(module, "config", None)
    if config is None or getattr(config, "model_type", None) != "resnet" or not hasattr(config, "to_dict"):
        return None
    return config.to_dict()


def _hub_labels(config: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    if config is None:
        return None
    from edgeresnet.intake.huggingface import labels_of

    return labels_of(dict(config))


def _same_function(module: nn.Module, intake: Intake, hub: bool) -> bool:
    theirs = copy.deepcopy(module).float().eval()
    size = 32 if intake.family == "cifar" else 64
    shape = declared_input_shape(module) or (2, intake.in_chans, size, size)
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            expected = theirs(pixel_values=example).logits if hub else theirs(example)
        except Exception:  # noqa: BLE001 - a module that cannot take this input is not shown equal
            return False
        if not isinstance(expected, Tensor):
            return False
        return expected.shape == (shape[0], intake.num_classes) and torch.allclose(
            intake.module(example), expected, rtol=_EQUIVALENT_RTOL, atol=_EQUIVALENT_ATOL
        )


def declared_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """The input shape a graph module was traced with (a torch.export program's), if it says."""
    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    for node in graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" else None
        if isinstance(value, Tensor) and value.dim() == 4:
            try:
                return tuple(int(d) for d in value.shape)
            except TypeError:  # a dynamic dimension
                return None
    return None


def _opaque(module: nn.Module, origin: str) -> Intake:
    """A module no layout describes: it goes through every stage that needs no structure."""
    copied = copy.deepcopy(module).float().eval()
    # By the weights, not the layers: a torch.export program holds its convs as graph operations.
    shapes = [tuple(v.shape) for k, v in copied.state_dict().items() if k.endswith("weight")]
    convs, heads = [s for s in shapes if len(s) == 4], [s for s in shapes if len(s) == 2]
    if not convs or not heads:
        raise ArchitectureError(
            f"the {origin} is not a ResNet this tool knows: it has no conv stem and linear head",
            hint="pass a ResNet (torchvision, timm, Hugging Face, pytorch-cifar or your own nn.Module of convs)",
        )
    intake = Intake(copied, None, "module", heads[-1][0], convs[0][1], input_shape=declared_input_shape(module))
    if not _has_residual_addition(intake):
        raise ArchitectureError(
            f"the {origin} is not a ResNet: its traced graph has no residual addition",
            hint="edgeresnet takes ResNets (convs with identity or projection shortcuts)",
        )
    return intake


def _has_residual_addition(intake: Intake) -> bool:
    """Whether the module's graph adds two feature maps; a module fx cannot trace (data-dependent
    control flow) gets the benefit of the doubt: its export may still work."""
    import operator

    try:
        graph = torch.fx.symbolic_trace(intake.module).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "cannot tell"
        return True
    adds = {operator.add, operator.iadd, torch.add}
    return any(
        (
            node.op == "call_function"
            and node.target in adds
            or node.op == "call_method"
            and node.target in ("add", "add_")
        )
        and sum(isinstance(arg, torch.fx.Node) for arg in node.args) == 2
        for node in graph.nodes
    )
