"""Training on several processes (and GPUs, and machines) under PyTorch's own launcher.

    torchrun --nproc-per-node N -m edgeresnet compress MODEL --recipe R --train-data D ...

torchrun starts the same command N times and tells each copy its RANK, WORLD_SIZE and
LOCAL_RANK. Every process loads the model and the data itself; rank 0 alone runs what does
not train (evaluation, pruning, export, the report) and writes every file; the others
join the training stages (distill, qat) under DistributedDataParallel and are handed
rank 0's model where a stage starts. So one command line serves one process, eight GPUs
or two machines, and a run directory looks the same whichever made it.

The training data is split by global batch, not by a DistributedSampler: every process
draws the same epoch order and augmentation, and rank r takes the r-th slice of each
global batch. The batches are then exactly those of a one-process run, whose gradients
DDP's mean of the slices' gradients reproduces (with ``sync_batchnorm``, batch norm's
statistics too), so a recipe gives the same model on one process or on many.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from .errors import EdgeResNetError

T = TypeVar("T")

# Processes wait for rank 0 while it evaluates and prunes (minutes on ImageNet-size data on
# a CPU); NCCL's default of 10 minutes would end such a run.
WAIT_FOR_RANK0 = timedelta(hours=6)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


_world = World()
_syncing = False  # inside a training epoch: collective statistics (batch norm, int8 ranges) are on


def world() -> World:
    """This process's place in the job (one process: rank 0 of 1)."""
    return _world


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(device: str = "cpu"):
    """Within the block, this process is part of torchrun's job (gloo on CPUs, NCCL on CUDA
    GPUs); without torchrun, a job of one. A process group the caller set up is used as is."""
    global _world
    if not launched_by_torchrun():
        yield _world
        return
    import torch
    import torch.distributed as dist

    own = not dist.is_initialized()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if own:
        if device == "cuda":
            check_device("cuda")
            torch.cuda.set_device(local_rank)  # before NCCL starts: one GPU per process
        dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=WAIT_FOR_RANK0)
    previous, _world = _world, World(dist.get_rank(), dist.get_world_size(), local_rank)
    try:
        yield _world
    finally:
        _world = previous
        if own:
            dist.destroy_process_group()


def share(produce: Callable[[], T]) -> T:
    """``produce()`` on rank 0, handed to every process (pickled); the others do not call it."""
    if not _world.distributed:
        return produce()
    import torch.distributed as dist

    box: list[Any] = [produce() if _world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_device(name: str) -> None:
    """A one-line error when this PyTorch cannot train on ``name``."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise EdgeResNetError(
            f"--device cuda: PyTorch sees no CUDA GPU here (torch {torch.__version__}, {build})",
            "use --device cpu, or install a CUDA build of torch on a machine with a GPU",
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise EdgeResNetError(
            "--device mps: Apple's Metal backend is not available here",
            "use --device cpu, or run on a Mac with Apple silicon",
        )


def training_device(name: str):
    """The torch.device the training stages use: with CUDA, this process's own GPU."""
    import torch

    check_device(name)
    if name == "cuda":
        return torch.device("cuda", _world.local_rank if _world.distributed else torch.cuda.current_device())
    return torch.device(name)


@contextlib.contextmanager
def syncing():
    """Training steps run inside: layers that keep batch statistics share them across processes."""
    global _syncing
    previous, _syncing = _syncing, _world.distributed
    try:
        yield
    finally:
        _syncing = previous


def is_syncing() -> bool:
    return _syncing


def all_reduce(tensor, op: str = "sum"):
    """In-place all-reduce of ``tensor`` over the job (``op``: sum, min or max); returns it."""
    import torch.distributed as dist

    dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return tensor
