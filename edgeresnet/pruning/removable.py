"""Which residual blocks the graph proves can be replaced by an identity.

A block can go when it computes ``act?(x + branch(x))`` with its own input ``x`` as the
shortcut: then an identity is exactly what a zero branch would give, when there is no
activation after the addition, or a ReLU and ``x`` is non-negative (relu(x + 0) == x).
graph.py's walk asks this of every block that holds a residual addition.
"""

from __future__ import annotations

from torch import fx, nn

from ..models.cifar import PadShortcut
from .trace import module_paths, op_name

# Ops whose output is non-negative, and ops that keep a non-negative input non-negative:
# what proves relu(x + 0) == x when a block is replaced by an identity.
_NONNEG_MODULES = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus)
_NONNEG_FUNCTIONS = {"relu", "relu_", "relu6", "sigmoid", "sigmoid_", "hardsigmoid", "softplus"}
_SIGN_MODULES = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Upsample,
    nn.Flatten,
    PadShortcut,
)
_SIGN_FUNCTIONS = {
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "dropout",
    "flatten",
    "view",
    "reshape",
    "contiguous",
    "clone",
    "getitem",
    "interpolate",
}


def removable(nodes: list[fx.Node], modules: dict[str, nn.Module], block: str) -> bool:
    """Whether the graph (``nodes`` in order, ``modules`` by path) proves ``block`` computes
    act?(x + branch(x)) with its input x as the shortcut, so that replacing it by an identity
    is what a zero branch would give: exact when there is no activation after the addition,
    or a ReLU and x is non-negative."""
    inside = {node for node in nodes if block in module_paths(node)}
    entries = {a for node in inside for a in node.all_input_nodes if a not in inside}
    exits = [node for node in inside if any(user not in inside for user in node.users)]
    if len(entries) != 1 or len(exits) != 1:
        return False
    (source,), result = entries, exits[0]
    relu = _is_relu(result, modules)
    total = result.args[0] if relu else result
    if (
        not isinstance(total, fx.Node)
        or total not in inside
        or total.op not in ("call_function", "call_method")
        or op_name(total) not in ("add", "iadd", "add_")
        or total.kwargs
        or len(total.args) != 2
        or (relu and len(total.users) != 1)
    ):
        return False
    if not any(_identity(operand, source, inside, modules) for operand in total.args):
        return False
    return not relu or _nonneg(source, modules)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        layer = modules[node.target]
        return isinstance(layer, nn.ReLU) or isinstance(layer, nn.LeakyReLU)
    return (
        node.op in ("call_function", "call_method")
        and op_name(node) in ("relu", "relu_", "leaky_relu", "leaky_relu_")
        and len(node.all_input_nodes) == 1
    )


def _identity(node, source: fx.Node, inside: set, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` is ``source`` itself, through nothing but nn.Identity modules of the block."""
    while node is not source:
        if not (
            isinstance(node, fx.Node)
            and node in inside
            and node.op == "call_module"
            and type(modules[node.target]) is nn.Identity
        ):
            return False
        node = node.args[0]
    return True


def _nonneg(node, modules: dict[str, nn.Module], depth: int = 0) -> bool:
    if depth > 50 or not isinstance(node, fx.Node):
        return False
    if node.op == "call_module":
        layer = modules[node.target]
        if isinstance(layer, _NONNEG_MODULES):
            return True
        return isinstance(layer, _SIGN_MODULES) and _nonneg(node.args[0], modules, depth + 1)
    if node.op not in ("call_function", "call_method"):
        return False
    name = op_name(node)
    if name in _NONNEG_FUNCTIONS:
        return True
    if name in _SIGN_FUNCTIONS:
        return _nonneg(node.args[0], modules, depth + 1)
    if name in ("add", "iadd", "add_", "cat"):
        inputs = node.args[0] if name == "cat" else node.all_input_nodes
        return all(_nonneg(n, modules, depth + 1) for n in inputs)
    return False
