"""What each op does to the channel dimension, by module class or function name.

graph.py's rules look ops up here: the tables are the vocabulary of its dispatch (an op
in none of them, or one whose arguments do not fit its rule, freezes what it touches).
Functions and tensor methods share one table, by name (``F.relu`` and ``x.relu()``).
"""

from __future__ import annotations

from torch import nn

# Module leaves that pass their input's channels through unchanged, one for one.
SAME_MODULES = (
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
# Functions and tensor methods that do the same (their other arguments are scalars or flags).
SAME_FUNCTIONS = {
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
# Elementwise arithmetic: sums join their operands' spaces as a residual stream, products as a gate.
SUMS = {"add", "iadd", "add_", "sub", "isub", "sub_", "rsub"}
PRODUCTS = {"mul", "imul", "mul_", "div", "truediv", "itruediv", "div_", "pow", "maximum", "minimum"}
# Keep the channels when they reduce over H and W only.
REDUCTIONS = {"mean", "sum", "amax", "amin", "std", "var"}
# Keep the channels when N and C stay where they are and no channel count is written as a constant.
RESHAPES = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "view_as", "reshape_as"}
EXPANDS = {"expand", "expand_as"}
CATS = {"cat", "concat", "concatenate"}  # along C: each input at an offset of a new space
# Keep the channels when they move only H and W.
PERMUTES = {"permute", "transpose", "swapaxes"}
METADATA = {"size", "dim", "numel", "getattr", "ndimension"}  # read the shape, touch no channel
