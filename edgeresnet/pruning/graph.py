"""Which channels must be pruned together, read from the model's traced graph.

``analyse`` traces the model (trace.py: torch.fx on meta tensors, a shape on every value),
then gives each value's channel dimension (dim 1) a *space variable*, and a few rules,
one small method each, say how the ops of the graph join them (a dependency graph, as in
Torch-Pruning; ops.py lists which op takes which rule):

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

spaces.py turns the joined variables into named spaces and segments; removable.py
says which residual blocks the graph proves can be replaced by an identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from ..models.cifar import PadShortcut
from .ops import (
    CATS,
    EXPANDS,
    METADATA,
    PERMUTES,
    PRODUCTS,
    REDUCTIONS,
    RESHAPES,
    SAME_FUNCTIONS,
    SAME_MODULES,
    SUMS,
)
from .spaces import structure_from_walk
from .structure import Structure
from .trace import op_name, rank_of, scope_of, shape_of, trace

_OUTPUT = "the model's output"


def analyse(module: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> Structure:
    """The spaces and segments of ``module``, from its graph at ``input_shape``."""
    return structure_from_walk(ChannelWalk(trace(module, input_shape)))


@dataclass
class ChannelVar:
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


class ChannelWalk:
    """One pass over the graph in order, applying one rule per node; spaces.py names what it leaves."""

    def __init__(self, traced: fx.GraphModule):
        self.traced = traced
        self.modules = dict(traced.named_modules())
        self.nodes = list(traced.graph.nodes)
        self.pos = {node: index for index, node in enumerate(self.nodes)}
        self.vars: list[ChannelVar] = []
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
        self.vars.append(ChannelVar(channels, self.pos[node], label))
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

    def reason(self, node: fx.Node) -> str:
        """The op as a frozen space names it: a module path and class, or a function and where it runs."""
        if node.op == "call_module":
            return f"{node.target} ({type(self.modules[node.target]).__name__})"
        scope = scope_of(node)
        return f"{op_name(node)} in {scope}" if scope else op_name(node)

    # -- the rules --------------------------------------------------------------------------

    def _placeholder(self, node: fx.Node) -> None:
        self._opaque_source(node, "the model's input")

    def _get_attr(self, node: fx.Node) -> None:
        self._opaque_source(node, f"{node.target} (a tensor the model holds)")

    def _opaque_source(self, node: fx.Node, reason: str) -> None:
        shape = shape_of(node)
        if shape is not None and len(shape) >= 2:
            self.value[node] = var = self.new(node, shape[1], str(node.target))
            self.freeze(var, node, reason)

    def _output(self, node: fx.Node) -> None:
        for value in node.all_input_nodes:
            if value in self.value:
                shape = shape_of(value)
                self.freeze(self.value[value], node, _OUTPUT, logits=shape is not None and len(shape) == 2)

    def _call_module(self, node: fx.Node) -> None:
        module = self.modules[node.target]
        if isinstance(module, nn.Conv2d) or (isinstance(module, nn.Linear) and rank_of(node.args[0]) == 2):
            self._conv(node, module)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.BatchNorm3d):
            self._norm(node)
        elif isinstance(module, PadShortcut):
            self._pad_shortcut(node, module)
        elif isinstance(module, SAME_MODULES) or (isinstance(module, nn.PReLU) and module.num_parameters == 1):
            self._same(node, node.args[0])
        elif isinstance(module, nn.Flatten):
            self._reshape(node, node.args[0])
        else:
            self._unknown(node)

    def _call_function(self, node: fx.Node) -> None:
        name = op_name(node)
        if name in METADATA:
            return
        if name in SUMS or name in PRODUCTS:
            self._elementwise(node, residual=name in SUMS)
        elif name in CATS:
            self._cat(node)
        elif name in SAME_FUNCTIONS:
            self._same(node, node.args[0] if node.args else None)
        elif name in REDUCTIONS:
            self._reduction(node)
        elif name in RESHAPES:
            self._reshape(node, node.args[0] if node.args else None)
        elif name in EXPANDS:
            self._expand(node)
        elif name in PERMUTES:
            self._permute(node)
        elif name == "getitem":
            self._getitem(node)
        elif name == "pad":
            self._pad_function(node)
        else:
            self._unknown(node)

    _call_method = _call_function

    def _unknown(self, node: fx.Node, reason: str | None = None) -> None:
        """Freeze every space the node reads, and give what it writes a frozen space."""
        reason = reason or self.reason(node)
        touched = False
        for value in node.all_input_nodes:
            if value in self.value:
                self.freeze(self.value[value], node, reason)
                touched = True
        shape = shape_of(node)
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
        written = self.new(node, shape_of(node)[1], path)
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
        source, shape = node.args[0], shape_of(node)
        if source not in self.value or shape is None or shape[1] != shape_of(source)[1] + pad.before + pad.after:
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
        shape, before = shape_of(node), shape_of(source)
        if source not in self.value or others or not shape or not before or len(shape) < 2 or shape[1] != before[1]:
            return self._unknown(node)
        self.value[node] = self.value[source]
        if source in self.key:
            self.key[node] = self.key[source]

    def _elementwise(self, node: fx.Node, residual: bool) -> None:
        """add (a residual stream) and mul (an attention gate) join the spaces of their tensor operands;
        a scalar, or an operand that broadcasts over the channels, leaves the other's space as it is."""
        out = shape_of(node)
        if out is None:
            if any(n in self.value for n in node.all_input_nodes):
                self._unknown(node)
            return  # arithmetic on sizes
        if len(out) < 2:
            return self._unknown(node)
        joined = []
        for operand in node.all_input_nodes:
            shape = shape_of(operand)
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
            self.vars[var].adds.append((self.pos[node], scope_of(node)))
        self.value[node] = var

    def _cat(self, node: fx.Node) -> None:
        """Along the channels each input lands at an offset of a new space; along any other dim they join."""
        tensors = node.args[0] if node.args else node.kwargs.get("tensors", ())
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        out = shape_of(node)
        if not out or len(out) < 2 or not isinstance(dim, int) or any(t not in self.value for t in tensors):
            return self._unknown(node)
        if dim % len(out) != 1:
            var = self.value[tensors[0]]
            for tensor in tensors[1:]:
                var = self.union(var, self.value[tensor])
            self.value[node] = var
            return
        scope = scope_of(node)
        written = self.new(node, out[1], f"{scope}.cat" if scope else "cat")
        offset = 0
        for tensor in tensors:
            self.links.append((self.value[tensor], written, offset))
            offset += shape_of(tensor)[1]
        self.value[node] = written

    def _reduction(self, node: fx.Node) -> None:
        """A mean (or sum, max) over H and W keeps the channels; over N or C it does not."""
        source = node.args[0]
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        rank = rank_of(source)
        if dims is None or rank < 2:
            return self._unknown(node)
        dims = {d % rank for d in ((dims,) if isinstance(dims, int) else dims)}
        if dims & {0, 1}:
            return self._unknown(node)
        self._same(node, source)

    def _reshape(self, node: fx.Node, source) -> None:
        """A reshape that leaves N and C where they are and only regroups H and W; the channel
        count must not be written as a constant (it would not follow the pruning)."""
        before, after = shape_of(source), shape_of(node)
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
        before, after = shape_of(source), shape_of(node)
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
        if op_name(node) not in ("view", "reshape", "expand"):
            return False
        spec = list(node.args[1:])
        if len(spec) == 1 and isinstance(spec[0], (tuple, list, torch.Size)):
            spec = list(spec[0])
        spec = spec or list(node.kwargs.get("shape", node.kwargs.get("size", ())))
        return len(spec) > 1 and isinstance(spec[1], int) and spec[1] != -1

    def _permute(self, node: fx.Node) -> None:
        """A transpose of H and W keeps the channels; one that moves N or C does not."""
        source, rank = node.args[0], rank_of(node.args[0])
        dims = list(node.args[1:])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = list(dims[0])
        if rank < 2 or not dims or not all(isinstance(d, int) for d in dims):
            return self._unknown(node)
        dims = [d % rank for d in dims]
        keeps = dims[:2] == [0, 1] if op_name(node) == "permute" else not set(dims) & {0, 1}
        if not keeps:
            return self._unknown(node)
        self._same(node, source)

    def _getitem(self, node: fx.Node) -> None:
        """Indexing that takes every sample and every channel (x[:, :, ::2, ::2]) keeps the channels."""
        source, index = node.args
        if source not in self.value:
            if shape_of(node) is not None and len(shape_of(node)) >= 2:
                self._unknown(node)
            return
        index = index if isinstance(index, tuple) else (index,)
        full = slice(None)
        if len(index) < 2 or index[0] != full or index[1] != full or shape_of(source) is None:
            return self._unknown(node)
        self._same(node, source)

    def _pad_function(self, node: fx.Node) -> None:
        """F.pad of H and W keeps the channels; padding C with constants cannot follow the pruning."""
        source, rank = node.args[0], rank_of(node.args[0])
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
        spatial = 2 * (rank - 2)
        if (
            rank < 2
            or not isinstance(pad, (tuple, list))
            or any(not isinstance(p, int) or p != 0 for p in pad[spatial:])
        ):
            return self._unknown(node, f"{self.reason(node)} (pads the channels with fixed widths)")
        self._same(node, source)
