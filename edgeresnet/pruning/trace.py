"""The model's torch.fx graph, with a shape on every value, and how to read its nodes.

The model is traced with torch.fx (convs, linears, norms, activations, pools and the
zoo's ``PadShortcut`` stay whole, as leaves) and run once on meta tensors, which gives
every value its shape without a weight copied or a multiply done. graph.py walks the
result; the readers below are what it (and removable.py) asks of a node.
"""

from __future__ import annotations

import inspect

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..errors import ArchitectureError
from ..models.cifar import PadShortcut
from ..models.summary import meta_copy


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with the zoo's parameter-free pad shortcut kept whole."""

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return isinstance(module, PadShortcut) or super().is_leaf_module(module, qualname)


def trace(module: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """A meta-tensor copy of ``module`` traced, each node's output shape in ``meta["tensor_meta"]``."""
    copy = meta_copy(module).eval()
    # forward(x, flag=False): the flags keep their defaults, only x is traced.
    extra = list(inspect.signature(copy.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in extra if p.default is not inspect.Parameter.empty}
    try:
        graph = _Tracer().trace(copy, concrete_args=concrete or None)
    except Exception as error:  # fx reports untraceable Python in many types
        raise ArchitectureError(
            f"cannot trace {type(module).__name__} with torch.fx to find its channel structure: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}",
            hint="pruning reads the model's graph: move data-dependent Python control flow out of forward",
        ) from None
    traced = fx.GraphModule(copy, graph)
    try:
        ShapeProp(traced).propagate(torch.empty(input_shape, device="meta"))
    except Exception as error:
        raise ArchitectureError(
            f"{type(module).__name__} does not run on a {tuple(input_shape)} input: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}",
            hint="pass the input shape the model takes",
        ) from None
    return traced


def shape_of(node) -> tuple[int, ...] | None:
    """The shape of a node's output; None for a non-tensor (a size, a tuple) or a non-node argument."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None


def rank_of(node) -> int:
    """The number of dims of a node's output; -1 when it is no tensor."""
    shape = shape_of(node)
    return -1 if shape is None else len(shape)


def module_paths(node: fx.Node) -> list[str]:
    """The modules whose forward holds the node, outermost first."""
    return [value[0] for value in node.meta.get("nn_module_stack", {}).values()]


def scope_of(node: fx.Node) -> str:
    """The innermost module whose forward holds the node."""
    paths = module_paths(node)
    return paths[-1] if paths else ""


def op_name(node: fx.Node) -> str:
    """The function's or method's name (``add``, ``relu``), or a call_module node's path."""
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))
