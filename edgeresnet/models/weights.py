"""Weights against a module: whether their keys and shapes fit, and a strict load that says why not.

Modules built ``shapes_only`` (on the meta device, no initialiser run) are what weights
are checked against before anything is allocated: ``detect`` checks each candidate
architecture that way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError

# BatchNorm gained this buffer in PyTorch 0.4.1; older checkpoints (Idelbayev's among
# them) lack it, and the model's own zero is the right value for them.
_OPTIONAL_SUFFIX = ".num_batches_tracked"

# Initialisers a module's constructor may call. On the meta device they do nothing useful, and
# the first normal_ there costs about 3 s (torch loads its reference decompositions).
_INITIALISERS = (
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "uniform_",
    "constant_",
    "zeros_",
    "ones_",
    "trunc_normal_",
    "xavier_normal_",
    "xavier_uniform_",
    "orthogonal_",
)


@contextlib.contextmanager
def shapes_only():
    """Build modules on the meta device, for their names and shapes only: no initialiser runs."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def apply_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], name: str | None = None) -> None:
    """Load every weight strictly, or say which keys do not fit ``name`` (the module's class
    name by default)."""
    own = module.state_dict()
    problem = mismatch(own, state_dict)
    if problem:
        raise ArchitectureError(f"the weights do not fit {name or type(module).__name__}: {problem}")
    module.load_state_dict({**own, **state_dict})


def mismatch(expected: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]) -> str | None:
    """How ``state_dict`` differs from ``expected`` in keys and shapes; None when it fits."""
    missing = [k for k in expected if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} is {tuple(state_dict[k].shape)} in the weights, {tuple(expected[k].shape)} in the model"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    parts = [
        f"{len(keys)} {label} key{'s' if len(keys) > 1 else ''} ({_first(keys)})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if keys
    ]
    return "; ".join(parts) or None


def _first(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f", ... {len(items) - n} more" if len(items) > n else "")
