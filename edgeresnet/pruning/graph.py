"""Which channels must be pruned together, read from the model's traced graph.

The model is traced with torch.fx (convs, linears, norms, activations, pools and the
zoo's ``PadShortcut`` stay whole, as leaves) and run once on meta tensors, which gives
every value its shape without a weight copied or a multiply done. Then each value's
channel dimension (dim 1) is given a *space variable*, and a few rules, one small
method each, say how the ops of the graph join them (a dependency graph, as in
Torch-Pruning):

- a Conv2d (or a Linear on an (N, C) tensor) reads its input's space and writes a new
  one; a grouped conv marks both with its groups;
- a batch norm joins its input's space as one of its norms;
- channel-preserving ops (activations, pools, dropout, identity, reductions over H and
  W, reshapes that leave N and C alone, arithmetic with a scalar, ``x.size()``) pass
  the space through;
- ``a + b`` joins the spaces of a and b (a residual stream); ``x * gate`` with a gate of
  the same channels joins them too (squeeze-and-excitation);
- a zero-padding shortcut links its input's channel c to its output's ``before + c``,
  ``torch.cat`` along channels links each input to an offset of its output;
- anything else that touches the channels (an unknown op or module, a transpose that
  moves C, a view with a fixed channel count, the graph's input and output) *freezes*
  the spaces it touches: they keep every channel, and ``Structure.frozen`` names the op.

Spaces are named as the name-based analysis of the zoo named them, so saved channel
plans keep working: a residual stream by its stage (the module holding the block whose
addition first formed it: ``layer2``), any other space by the conv that writes it
(``layer2.0.conv1``, the stem's ``conv1``).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..errors import ArchitectureError
from ..models.cifar import PadShortcut
from ..models.summary import meta_copy
from .structure import Space, Structure, _segments

# Module leaves that pass their input's channels through unchanged, one for one.
_SAME_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Tanh,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.AlphaDropout,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Upsample,
)
_SAME_FUNCTIONS = {
    "relu",
    "relu_",
    "relu6",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "hardsigmoid",
    "hardtanh",
    "hardtanh_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "softplus",
    "dropout",
    "dropout2d",
    "alpha_dropout",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "interpolate",
    "upsample",
    "contiguous",
    "clone",
    "detach",
    "float",
    "to",
    "type",
    "abs",
    "neg",
    "exp",
    "sqrt",
    "rsqrt",
    "square",
    "reciprocal",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_max",
}
_SUMS = {"add", "iadd", "add_", "sub", "isub", "sub_", "rsub"}
_PRODUCTS = {"mul", "imul", "mul_", "div", "truediv", "itruediv", "div_", "pow", "maximum", "minimum"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "std", "var"}
_RESHAPES = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_EXPANDS = {"expand", "expand_as"}
_CATS = {"cat", "concat", "concatenate"}
_METADATA = {"size", "dim", "numel", "getattr", "ndimension"}  # read the shape, touch no channel
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
_OUTPUT = "the model's output"


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with the zoo's parameter-free pad shortcut kept whole."""

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return isinstance(module, PadShortcut) or super().is_leaf_module(module, qualname)


def analyse(module: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> Structure:
    """The spaces and segments of ``module``, from its graph at ``input_shape``."""
    return _Walk(_traced(module, input_shape)).structure()


def _traced(module: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
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


@dataclass
class _Var:
    """The channel dimension of one or more values; union-find joins the ones that must agree."""

    channels: int | None
    birth: int  # position of the node that made it
    label: str  # what names it when nothing better does: the conv, cat or pad that made it
    producers: list[tuple[tuple[int, int], str]] = field(default_factory=list)  # (sort key, module)
    norms: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    consumers: list[tuple[int, str]] = field(default_factory=list)
    groups: set[int] = field(default_factory=set)
    adds: list[tuple[int, str]] = field(default_factory=list)  # residual additions: (position, block)
    frozen: list[tuple[int, str, bool]] = field(default_factory=list)  # (position, reason, is it the logits)


class _Walk:
    """One pass over the graph in order, applying one rule per node."""

    def __init__(self, traced: fx.GraphModule):
        self.traced = traced
        self.modules = dict(traced.named_modules())
        self.nodes = list(traced.graph.nodes)
        self.pos = {node: index for index, node in enumerate(self.nodes)}
        self.vars: list[_Var] = []
        self.parent: list[int] = []
        self.value: dict[fx.Node, int] = {}  # node -> the variable of its channel dimension
        self.key: dict[fx.Node, tuple[int, int]] = {}  # node -> sort key of the producer that wrote it
        self.links: list[tuple[int, int, int]] = []  # (source, target, offset): source c is target offset + c
        self.pads: list[tuple[str, int, int, int]] = []  # (pad module, source, target, offset)
        self.shared: dict[str, tuple[int, int]] = {}  # a module's spaces read and written, for a second call
        for node in self.nodes:
            getattr(self, f"_{node.op}")(node)

    # -- union-find -------------------------------------------------------------------------

    def new(self, node: fx.Node, channels: int | None, label: str) -> int:
        self.vars.append(_Var(channels, self.pos[node], label))
        self.parent.append(len(self.parent))
        return len(self.vars) - 1

    def find(self, var: int) -> int:
        while self.parent[var] != var:
            self.parent[var] = self.parent[self.parent[var]]
            var = self.parent[var]
        return var

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
        return a

    def freeze(self, var: int, node: fx.Node, reason: str, logits: bool = False) -> None:
        self.vars[var].frozen.append((self.pos[node], reason, logits))

    # -- shapes and names -------------------------------------------------------------------

    @staticmethod
    def shape(node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
        return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None

    @staticmethod
    def paths(node: fx.Node) -> list[str]:
        return [value[0] for value in node.meta.get("nn_module_stack", {}).values()]

    def scope(self, node: fx.Node) -> str:
        """The innermost module whose forward holds the node."""
        paths = self.paths(node)
        return paths[-1] if paths else ""

    def op_name(self, node: fx.Node) -> str:
        target = node.target
        return target if isinstance(target, str) else getattr(target, "__name__", str(target))

    def reason(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{node.target} ({type(self.modules[node.target]).__name__})"
        scope = self.scope(node)
        return f"{self.op_name(node)} in {scope}" if scope else self.op_name(node)

    # -- the rules --------------------------------------------------------------------------

    def _placeholder(self, node: fx.Node) -> None:
        self._opaque_source(node, "the model's input")

    def _get_attr(self, node: fx.Node) -> None:
        self._opaque_source(node, f"{node.target} (a tensor the model holds)")

    def _opaque_source(self, node: fx.Node, reason: str) -> None:
        shape = self.shape(node)
        if shape is not None and len(shape) >= 2:
            self.value[node] = var = self.new(node, shape[1], str(node.target))
            self.freeze(var, node, reason)

    def _output(self, node: fx.Node) -> None:
        for value in node.all_input_nodes:
            if value in self.value:
                shape = self.shape(value)
                self.freeze(self.value[value], node, _OUTPUT, logits=shape is not None and len(shape) == 2)

    def _call_module(self, node: fx.Node) -> None:
        module = self.modules[node.target]
        if isinstance(module, nn.Conv2d) or (isinstance(module, nn.Linear) and self._rank(node.args[0]) == 2):
            self._conv(node, module)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.BatchNorm3d):
            self._norm(node)
        elif isinstance(module, PadShortcut):
            self._pad_shortcut(node, module)
        elif isinstance(module, _SAME_MODULES) or (isinstance(module, nn.PReLU) and module.num_parameters == 1):
            self._same(node, node.args[0])
        elif isinstance(module, nn.Flatten):
            self._reshape(node, node.args[0])
        else:
            self._unknown(node)

    def _call_function(self, node: fx.Node) -> None:
        name = self.op_name(node)
        if name in _METADATA:
            return
        if name in _SUMS or name in _PRODUCTS:
            self._elementwise(node, residual=name in _SUMS)
        elif name in _CATS:
            self._cat(node)
        elif name in _SAME_FUNCTIONS:
            self._same(node, node.args[0] if node.args else None)
        elif name in _REDUCTIONS:
            self._reduction(node)
        elif name in _RESHAPES:
            self._reshape(node, node.args[0] if node.args else None)
        elif name in _EXPANDS:
            self._expand(node)
        elif name in ("permute", "transpose", "swapaxes"):
            self._permute(node)
        elif name == "getitem":
            self._getitem(node)
        elif name == "pad":
            self._pad_function(node)
        else:
            self._unknown(node)

    _call_method = _call_function

    def _rank(self, node) -> int:
        shape = self.shape(node)
        return -1 if shape is None else len(shape)

    def _unknown(self, node: fx.Node, reason: str | None = None) -> None:
        """Freeze every space the node reads, and give what it writes a frozen space."""
        reason = reason or self.reason(node)
        touched = False
        for value in node.all_input_nodes:
            if value in self.value:
                self.freeze(self.value[value], node, reason)
                touched = True
        shape = self.shape(node)
        if shape is not None and len(shape) >= 2 or shape is None and touched and node.meta.get("tensor_meta"):
            self.value[node] = var = self.new(node, shape[1] if shape else None, reason)
            self.freeze(var, node, reason)

    def _conv(self, node: fx.Node, layer: nn.Conv2d | nn.Linear) -> None:
        """Reads its input's space, writes a new one; a grouped conv marks both with its groups."""
        source = node.args[0]
        if source not in self.value:
            return self._unknown(node)
        path = node.target
        groups = getattr(layer, "groups", 1)
        read = self.value[source]
        self.vars[read].consumers.append((self.pos[node], path))
        self.key[node] = key = (self.pos[source], self.pos[node])
        written = self.new(node, self.shape(node)[1], path)
        self.vars[written].producers.append((key, path))
        if groups > 1:
            self.vars[read].groups.add(groups)
            self.vars[written].groups.add(groups)
        if path in self.shared:  # the same weights applied twice: both calls share both spaces
            read = self.union(self.shared[path][0], read)
            written = self.union(self.shared[path][1], written)
        self.shared[path] = (read, written)
        self.value[node] = written

    def _norm(self, node: fx.Node) -> None:
        """A batch norm joins its input's space; it sorts beside the conv whose output it takes."""
        source = node.args[0]
        if source not in self.value:
            return self._unknown(node)
        key = self.key.get(source, (self.pos[source], self.pos[node]))
        self.vars[self.value[source]].norms.append((key, node.target))
        self.value[node] = self.value[source]
        if source in self.key:
            self.key[node] = self.key[source]

    def _pad_shortcut(self, node: fx.Node, pad: PadShortcut) -> None:
        """Input channel c is output channel before + c; the rest are zeros."""
        source, shape = node.args[0], self.shape(node)
        if source not in self.value or shape is None or shape[1] != self.shape(source)[1] + pad.before + pad.after:
            return self._unknown(node)
        read = self.value[source]
        self.vars[read].consumers.append((self.pos[node], node.target))
        written = self.new(node, shape[1], node.target)
        self.links.append((read, written, pad.before))
        self.pads.append((node.target, read, written, pad.before))
        self.value[node] = written

    def _same(self, node: fx.Node, source) -> None:
        """A channel-wise op: the output's channels are the input's, one for one."""
        others = [n for n in node.all_input_nodes if n is not source and n in self.value]
        shape, before = self.shape(node), self.shape(source)
        if source not in self.value or others or not shape or not before or len(shape) < 2 or shape[1] != before[1]:
            return self._unknown(node)
        self.value[node] = self.value[source]
        if source in self.key:
            self.key[node] = self.key[source]

    def _elementwise(self, node: fx.Node, residual: bool) -> None:
        """add (a residual stream) and mul (an attention gate) join the spaces of their tensor operands;
        a scalar, or an operand that broadcasts over the channels, leaves the other's space as it is."""
        out = self.shape(node)
        if out is None:
            if any(n in self.value for n in node.all_input_nodes):
                self._unknown(node)
            return  # arithmetic on sizes
        if len(out) < 2:
            return self._unknown(node)
        joined = []
        for operand in node.all_input_nodes:
            shape = self.shape(operand)
            if shape is None:
                continue
            if len(shape) == len(out) and operand in self.value:
                if shape[1] == out[1]:
                    joined.append(self.value[operand])
                elif shape[1] == 1:  # e.g. a spatial attention map (N, 1, H, W): its one channel stays
                    self.freeze(self.value[operand], node, f"{self.reason(node)} broadcasts it over the channels")
                else:
                    return self._unknown(node)
                continue
            aligned = len(shape) - (len(out) - 1)  # the operand's dim that broadcasting puts on the channels
            if len(shape) > len(out) or (aligned >= 0 and shape[aligned] != 1):
                return self._unknown(node)
            if operand in self.value:  # its channel dim lands on H or W: its own channels mean nothing here
                self.freeze(self.value[operand], node, self.reason(node))
        if not joined:
            return self._unknown(node)
        roots = {self.find(var) for var in joined}
        var = joined[0]
        for other in joined[1:]:
            var = self.union(var, other)
        if residual and len(roots) > 1:
            self.vars[var].adds.append((self.pos[node], self.scope(node)))
        self.value[node] = var

    def _cat(self, node: fx.Node) -> None:
        """Along the channels each input lands at an offset of a new space; along any other dim they join."""
        tensors = node.args[0] if node.args else node.kwargs.get("tensors", ())
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        out = self.shape(node)
        if not out or len(out) < 2 or not isinstance(dim, int) or any(t not in self.value for t in tensors):
            return self._unknown(node)
        if dim % len(out) != 1:
            var = self.value[tensors[0]]
            for tensor in tensors[1:]:
                var = self.union(var, self.value[tensor])
            self.value[node] = var
            return
        scope = self.scope(node)
        written = self.new(node, out[1], f"{scope}.cat" if scope else "cat")
        offset = 0
        for tensor in tensors:
            self.links.append((self.value[tensor], written, offset))
            offset += self.shape(tensor)[1]
        self.value[node] = written

    def _reduction(self, node: fx.Node) -> None:
        """A mean (or sum, max) over H and W keeps the channels; over N or C it does not."""
        source = node.args[0]
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        rank = self._rank(source)
        if dims is None or rank < 2:
            return self._unknown(node)
        dims = {d % rank for d in ((dims,) if isinstance(dims, int) else dims)}
        if dims & {0, 1}:
            return self._unknown(node)
        self._same(node, source)

    def _reshape(self, node: fx.Node, source) -> None:
        """A reshape that leaves N and C where they are and only regroups H and W; the channel
        count must not be written as a constant (it would not follow the pruning)."""
        before, after = self.shape(source), self.shape(node)
        if (
            not before
            or not after
            or len(before) < 2
            or len(after) < 2
            or before[:2] != after[:2]
            or math.prod(before[2:]) != math.prod(after[2:])
            or self._fixed_channels(node)
        ):
            return self._unknown(node)
        self._same(node, source)

    def _expand(self, node: fx.Node) -> None:
        source = node.args[0]
        before, after = self.shape(source), self.shape(node)
        if (
            source not in self.value
            or not before
            or not after
            or len(before) != len(after)
            or before[:2] != after[:2]
            or self._fixed_channels(node)
        ):
            return self._unknown(node)
        self.value[node] = self.value[source]

    def _fixed_channels(self, node: fx.Node) -> bool:
        """view(n, 64, ...) rather than view(n, -1, ...) or view(n, x.size(1), ...)."""
        if self.op_name(node) not in ("view", "reshape", "expand"):
            return False
        spec = list(node.args[1:])
        if len(spec) == 1 and isinstance(spec[0], (tuple, list, torch.Size)):
            spec = list(spec[0])
        spec = spec or list(node.kwargs.get("shape", node.kwargs.get("size", ())))
        return len(spec) > 1 and isinstance(spec[1], int) and spec[1] != -1

    def _permute(self, node: fx.Node) -> None:
        """A transpose of H and W keeps the channels; one that moves N or C does not."""
        source, rank = node.args[0], self._rank(node.args[0])
        dims = list(node.args[1:])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = list(dims[0])
        if rank < 2 or not dims or not all(isinstance(d, int) for d in dims):
            return self._unknown(node)
        dims = [d % rank for d in dims]
        keeps = dims[:2] == [0, 1] if self.op_name(node) == "permute" else not set(dims) & {0, 1}
        if not keeps:
            return self._unknown(node)
        self._same(node, source)

    def _getitem(self, node: fx.Node) -> None:
        """Indexing that takes every sample and every channel (x[:, :, ::2, ::2]) keeps the channels."""
        source, index = node.args
        if source not in self.value:
            if self.shape(node) is not None and len(self.shape(node)) >= 2:
                self._unknown(node)
            return
        index = index if isinstance(index, tuple) else (index,)
        full = slice(None)
        if len(index) < 2 or index[0] != full or index[1] != full or self.shape(source) is None:
            return self._unknown(node)
        self._same(node, source)

    def _pad_function(self, node: fx.Node) -> None:
        """F.pad of H and W keeps the channels; padding C with constants cannot follow the pruning."""
        source, rank = node.args[0], self._rank(node.args[0])
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
        spatial = 2 * (rank - 2)
        if (
            rank < 2
            or not isinstance(pad, (tuple, list))
            or any(not isinstance(p, int) or p != 0 for p in pad[spatial:])
        ):
            return self._unknown(node, f"{self.reason(node)} (pads the channels with fixed widths)")
        self._same(node, source)

    # -- the blocks that can go -------------------------------------------------------------

    def removable(self, block: str) -> bool:
        """Whether the graph proves ``block`` computes act?(x + branch(x)) with its input x as the
        shortcut, so that replacing it by an identity is what a zero branch would give: exact
        when there is no activation after the addition, or a ReLU and x is non-negative."""
        inside = {node for node in self.nodes if block in self.paths(node)}
        entries = {a for node in inside for a in node.all_input_nodes if a not in inside}
        exits = [node for node in inside if any(user not in inside for user in node.users)]
        if len(entries) != 1 or len(exits) != 1:
            return False
        (source,), result = entries, exits[0]
        relu = self._is_relu(result)
        total = result.args[0] if relu else result
        if (
            not isinstance(total, fx.Node)
            or total not in inside
            or total.op not in ("call_function", "call_method")
            or self.op_name(total) not in ("add", "iadd", "add_")
            or total.kwargs
            or len(total.args) != 2
            or (relu and len(total.users) != 1)
        ):
            return False
        if not any(self._identity(operand, source, inside) for operand in total.args):
            return False
        return not relu or self._nonneg(source)

    def _is_relu(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            layer = self.modules[node.target]
            return isinstance(layer, nn.ReLU) or isinstance(layer, nn.LeakyReLU)
        return (
            node.op in ("call_function", "call_method")
            and self.op_name(node) in ("relu", "relu_", "leaky_relu", "leaky_relu_")
            and len(node.all_input_nodes) == 1
        )

    def _identity(self, node, source: fx.Node, inside: set) -> bool:
        while node is not source:
            if not (
                isinstance(node, fx.Node)
                and node in inside
                and node.op == "call_module"
                and type(self.modules[node.target]) is nn.Identity
            ):
                return False
            node = node.args[0]
        return True

    def _nonneg(self, node: fx.Node, depth: int = 0) -> bool:
        if depth > 50 or not isinstance(node, fx.Node):
            return False
        if node.op == "call_module":
            layer = self.modules[node.target]
            if isinstance(layer, _NONNEG_MODULES):
                return True
            return isinstance(layer, _SIGN_MODULES) and self._nonneg(node.args[0], depth + 1)
        if node.op not in ("call_function", "call_method"):
            return False
        name = self.op_name(node)
        if name in _NONNEG_FUNCTIONS:
            return True
        if name in _SIGN_FUNCTIONS:
            return self._nonneg(node.args[0], depth + 1)
        if name in ("add", "iadd", "add_", "cat"):
            inputs = node.args[0] if name == "cat" else node.all_input_nodes
            return all(self._nonneg(n, depth + 1) for n in inputs)
        return False

    # -- the result -------------------------------------------------------------------------

    def structure(self) -> Structure:
        classes = _Classes(self)
        spaces: dict[str, Space] = {}
        frozen: dict[str, str] = {}
        names: dict[int, str] = {}
        taken: set[str] = set()
        blocks = sorted({block for var in self.vars for _, block in var.adds if block}, key=len, reverse=True)
        for root in classes.ordered():
            info = classes.info[root]
            name = _unique(classes.name(root), taken)
            names[root] = name
            if info.reason is not None:
                if info.producers and not info.logits_only:
                    frozen[name] = info.reason
                continue
            members = [p for _, p in info.producers + info.norms] + [p for _, p in info.consumers]
            block = (
                None
                if info.adds
                else next((b for b in blocks if members and all(m.startswith(b + ".") for m in members)), None)
            )
            spaces[name] = Space(
                name,
                info.channels,
                _paths(info.producers),
                _paths(info.norms),
                _paths(info.consumers),
                groups=math.lcm(*info.groups),
                residual=bool(info.adds),
                block=block,
            )
        pads = {
            path: (names[self.find(s)], names[self.find(t)], offset)
            for path, s, t, offset in self.pads
            if names.get(self.find(s)) in spaces and names.get(self.find(t)) in spaces
        }
        pad_links = {(self.find(s), self.find(t), offset) for _, s, t, offset in self.pads}
        links = tuple(
            (names[self.find(s)], names[self.find(t)], offset)
            for s, t, offset in self.links
            if (self.find(s), self.find(t), offset) not in pad_links
            and names.get(self.find(s)) in spaces
            and names.get(self.find(t)) in spaces
        )
        removable = {block for block in blocks if self.removable(block)}
        segments = _segments(spaces, [*pads.values(), *links], removable)
        return Structure(spaces, segments, pads, frozen=frozen, links=links)


def _paths(items: list) -> tuple[str, ...]:
    """Module paths in order of their keys, each once."""
    return tuple(dict.fromkeys(path for _, path in sorted(items)))


def _unique(name: str, taken: set[str]) -> str:
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{name}#{count}"
    taken.add(candidate)
    return candidate


@dataclass
class _Class:
    """What the variables of one union-find class say together."""

    vars: list[int]
    channels: int | None
    producers: list
    norms: list
    consumers: list
    groups: set[int]
    adds: list
    reasons: list
    birth: int

    @property
    def reason(self) -> str | None:
        return min(self.reasons)[1] if self.reasons else None

    @property
    def logits_only(self) -> bool:
        """The classifier's logits: frozen only by being the answer, and read by nothing."""
        return not self.consumers and all(logits for _, _, logits in self.reasons)


class _Classes:
    """The walk's variables gathered by class; a class tied to a frozen one by a pad or a cat
    (or one a grouped conv reads across such a tie) is frozen with it."""

    def __init__(self, walk: _Walk):
        self.walk = walk
        members: dict[int, list[int]] = {}
        for var in range(len(walk.vars)):
            members.setdefault(walk.find(var), []).append(var)
        self.info = {root: self._gather(vars_) for root, vars_ in members.items()}
        self._tie_links()

    def _gather(self, vars_: list[int]) -> _Class:
        records = [self.walk.vars[v] for v in vars_]
        channels = {r.channels for r in records}
        reasons = [reason for r in records for reason in r.frozen]
        if None in channels or len(channels) > 1:
            reasons.append((-1, "the ops that write it disagree on its channel count", False))
        return _Class(
            vars_,
            next(iter(channels)),
            [p for r in records for p in r.producers],
            [n for r in records for n in r.norms],
            [c for r in records for c in r.consumers],
            {g for r in records for g in r.groups},
            sorted(a for r in records for a in r.adds),
            reasons,
            min(r.birth for r in records),
        )

    def _tie_links(self) -> None:
        find = self.walk.find
        parent = {root: root for root in self.info}

        def top(root):
            while parent[root] != root:
                root = parent[root]
            return root

        self.linked = set()
        for source, target, _ in self.walk.links:
            s, t = find(source), find(target)
            self.linked |= {s, t}
            if s == t:
                self.info[s].reasons.append((-1, "a pad or cat ties it to itself", False))
            parent[top(t)] = top(s)
        components: dict[int, list[int]] = {}
        for root in self.linked:
            components.setdefault(top(root), []).append(root)
        for roots in components.values():
            reasons = sorted(r for root in roots for r in self.info[root].reasons if not r[2])
            if not reasons and any(self.info[root].groups - {1} for root in roots):
                reasons = [(-1, "a grouped conv reads channels that a pad or cat ties to others", False)]
            if reasons:
                for root in roots:
                    if not self.info[root].reasons or all(r[2] for r in self.info[root].reasons):
                        self.info[root].reasons.append(reasons[0])

    def ordered(self) -> list[int]:
        """Residual streams first, by their first addition, then the rest by where they are
        written: the order of the name-based analysis."""
        kept = [root for root, info in self.info.items() if info.producers or root in self.linked]
        residual = sorted((r for r in kept if self.info[r].adds), key=lambda r: self.info[r].adds[0])
        rest = sorted((r for r in kept if not self.info[r].adds), key=lambda r: self.info[r].birth)
        return residual + rest

    def name(self, root: int) -> str:
        info = self.info[root]
        if info.adds:
            block = info.adds[0][1]
            stage = block.rpartition(".")[0]
            if stage or block:
                return stage or block
        writers = [v for v in info.vars if self.walk.vars[v].producers] or info.vars
        return self.walk.vars[min(writers, key=lambda v: self.walk.vars[v].birth)].label
