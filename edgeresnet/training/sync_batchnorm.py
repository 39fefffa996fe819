"""Batch norm over the whole global batch of a torchrun job, on any device.

torch.nn.SyncBatchNorm runs on GPUs only, and it is not a BatchNorm2d, so code that finds
batch norms by type (our QAT folding, NNCF) would no longer see them. This one is a
BatchNorm2d: while ``distributed.syncing()`` is on, it sums each channel's count, sum and
sum of squares over all processes with an all-reduce (whose backward sums the gradients
the same way), normalises with those statistics and updates the running
ones as one process on the whole batch would. Outside training steps it is a plain
BatchNorm2d, and ``plain()`` turns it back into one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed


class _SummedOverProcesses(torch.autograd.Function):
    """The sum of a tensor over all processes; its gradient is the sum of theirs (each process's
    loss depends on every process's contribution to the statistics)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return distributed.all_reduce(tensor.clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return distributed.all_reduce(grad.clone())


class GlobalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and distributed.is_syncing()):
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        count = torch.full((1,), x.shape[0] * x.shape[2] * x.shape[3], dtype=torch.float64, device=x.device)
        # float64 sums: the variance as E[x^2] - E[x]^2 loses digits in float32.
        wide = x.double()
        stats = _SummedOverProcesses.apply(torch.cat([count, wide.sum((0, 2, 3)), (wide * wide).sum((0, 2, 3))]))
        n, channels = stats[0], self.num_features
        mean = stats[1 : 1 + channels] / n
        var = (stats[1 + channels :] / n - mean * mean).clamp(min=0)
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
            self.running_var.lerp_((var * n / (n - 1).clamp(min=1)).to(self.running_var.dtype), factor)
        shape = (1, -1, 1, 1)
        scale = torch.rsqrt(var + self.eps).to(x.dtype).reshape(shape)
        y = (x - mean.to(x.dtype).reshape(shape)) * scale
        # The last step is batch_norm itself (with neutral statistics), as in a plain BatchNorm2d:
        # tools that hook the batch_norm call of this module (NNCF's quantizers) still find it.
        neutral = torch.zeros_like(self.running_mean), torch.ones_like(self.running_var)
        return F.batch_norm(y, *neutral, self.weight, self.bias, False, 0.0, 0.0)


def globalized(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm2d (exactly that type) turned into a GlobalBatchNorm2d, in place."""
    return _swap(module, nn.BatchNorm2d, GlobalBatchNorm2d)


def plain(module: nn.Module) -> nn.Module:
    """The reverse of ``globalized``."""
    return _swap(module, GlobalBatchNorm2d, nn.BatchNorm2d)


def _swap(module: nn.Module, old: type, new: type) -> nn.Module:
    for layer in module.modules():
        if type(layer) is old:
            # The same object, parameters and hooks: whatever holds a reference to it (a QAT
            # wrapper, an optimiser) keeps seeing it.
            layer.__class__ = new
    return module
