"""Whatever a checkpoint holds, made a bare state dict: unwrapped, unprefixed, float32, finite."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edgeresnet.errors import CheckpointError

# Where training scripts commonly nest the weights; other entries (epoch, optimizer,
# best_prec1, ...) are ignored.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")  # "net": pytorch-cifar
# nn.DataParallel and torch.compile prefix every key of the module they wrap.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def clean_state_dict(loaded: Any, origin: Path | str) -> dict[str, Tensor]:
    """A bare state dict: unwrapped, unprefixed, float32, finite."""
    state_dict = _unwrap(loaded, origin)
    for prefix in _WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    for key, tensor in state_dict.items():
        # A sum is finite exactly when every value is (weights do not add up to 3e38): one pass
        # without a mask, several times faster than isfinite().all() on a ResNet-50.
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum()):
            raise CheckpointError(
                f"weight {key!r} in {origin} holds NaN or Inf values",
                hint="the checkpoint is damaged or training diverged; use an earlier checkpoint",
            )
    return state_dict


def _unwrap(loaded: Any, origin: Path | str) -> dict[str, Tensor]:
    if isinstance(loaded, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                return _unwrap(loaded[key], origin)
        tensors = {k: v for k, v in loaded.items() if isinstance(v, Tensor)}
        if tensors:
            return tensors
        found = f"a dict with keys {', '.join(map(repr, list(loaded)[:5]))}" if loaded else "an empty dict"
    else:
        found = f"a {type(loaded).__name__}"
    raise CheckpointError(
        f"{origin} holds {found}, not model weights",
        hint=f"save model.state_dict(), bare or under one of {', '.join(_WRAPPER_KEYS)}",
    )
