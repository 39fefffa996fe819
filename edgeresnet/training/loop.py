"""The training loop the distill and qat stages share: optimiser, schedule, checkpoints.

A stage supplies the loss as ``loss_fn(module, inputs, labels) -> (loss, logits)``; the
loop owns everything else. With a ``checkpoint_dir`` it writes one checkpoint per
finished epoch and, started again on the same directory, continues after the newest
readable one. Because every epoch's data order, augmentation and global RNG are seeded
by the epoch's number (and the optimiser state, step count and batch-norm statistics are
in the checkpoint), a run that was killed and restarted ends with bit-identical weights
to one that was not.

Under torchrun the module trains wrapped in DistributedDataParallel, each process on its
slice of every global batch (training/data.py); rank 0 alone reads and writes checkpoints
and hands what it resumed from to the others. Each epoch's loss and accuracy are those of
the global batches. ``Execution`` says on which device, with how many loader threads.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .. import distributed
from ..data import progress_bar
from ..errors import EdgeResNetError
from .config import Execution, TrainConfig
from .data import TrainBatches, epoch_seed
from .sync_batchnorm import globalized, plain

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

CHECKPOINT = re.compile(r"epoch-(\d+)\.pt")
KEEP_CHECKPOINTS = 2
FORMAT = 1


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    loss: float  # mean over the epoch's steps
    train_top1: float | None  # percent, on the augmented training batches; None without labels
    lr: float  # at the epoch's last step
    seconds: float
    val_top1: float | None = None
    # Of `seconds`, how long the step waited for its batch: the loader's shortfall.
    data_wait_seconds: float = 0.0


def fit(
    module: nn.Module,
    batches: TrainBatches,
    config: TrainConfig,
    loss_fn: LossFn,
    *,
    extra_parameters: Sequence[nn.Module] = (),
    checkpoint_dir: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    progress: str = "train",
    log: Callable[[str], None] = lambda message: None,
    execution: Execution = Execution(),
) -> list[EpochRecord]:
    """Train ``module`` in place for ``config.epochs`` epochs; the history of every epoch.

    ``extra_parameters``: modules trained alongside (e.g. feature adapters) and saved in
    the checkpoints. ``on_step(step, total_steps)`` runs before each step; ``validate``
    gives a top-1 percent after each epoch. ``loss_fn`` gets the inputs on the training
    device, where it must keep what it adds (a teacher). The module ends on the CPU.
    """
    world = distributed.world()
    device = distributed.training_device(execution.device)
    check_precision(config, device.type)
    steps = len(batches)
    total = config.epochs * steps
    signature = _signature(config, module, extra_parameters, batches)
    for m in (module, *extra_parameters):
        m.to(device)
    if config.sync_batchnorm and world.distributed:
        globalized(module)
    optimizer = _optimizer(config, [module, *extra_parameters])
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    history: list[EpochRecord] = []
    if checkpoint_dir is not None and world.is_main:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    # Rank 0 reads the checkpoint (its errors end the job there); every process loads the same state.
    state = distributed.share(lambda: _resume(checkpoint_dir, signature, steps, log) if checkpoint_dir else None)
    if state is not None:
        module.load_state_dict(state["model"])
        for extra, extra_state in zip(extra_parameters, state["extra"]):
            extra.load_state_dict(extra_state)
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = [EpochRecord(**record) for record in state["history"]]
    module.train()
    trained = _parallel(module, device) if world.distributed else module
    try:
        with _progress_bar(world.is_main) as bar, distributed.syncing():
            task = bar.add_task(progress, total=total, completed=len(history) * steps, loss=math.nan)
            for epoch in range(len(history), config.epochs):
                bar.update(task, description=f"{progress} {epoch + 1}/{config.epochs}")
                # Whatever loss_fn draws from the global RNG (dropout, say) is seeded per epoch
                # too, without touching the caller's RNG.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(epoch_seed(config.seed, epoch, stream=1))
                    record = _epoch(
                        trained,
                        batches,
                        config,
                        loss_fn,
                        optimizer,
                        scaler,
                        extra_parameters,
                        device,
                        epoch,
                        total,
                        on_step,
                        lambda loss: bar.update(task, advance=1, loss=loss),
                    )
                if validate is not None and world.is_main:
                    record.val_top1 = _validated(module, validate)
                history.append(record)
                log(_summary(record, config.epochs))
                if checkpoint_dir is not None and world.is_main:
                    _save(checkpoint_dir, signature, module, extra_parameters, optimizer, scaler, history, steps)
    finally:
        plain(module)
        for m in (module, *extra_parameters):
            m.to("cpu")
    return history


def _parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` under DistributedDataParallel; it starts from rank 0's weights and buffers."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def check_precision(config: TrainConfig, device: str) -> None:
    """A one-line error when ``config``'s precision cannot train on ``device`` (cpu, cuda, mps)."""
    if config.precision == "fp16" and device != "cuda":
        raise EdgeResNetError(
            f"precision fp16 trains on CUDA GPUs only, and this run trains on {device}",
            "set the stage's precision to bf16 (CPUs with AVX512-BF16 or AMX) or fp32, or pass --device cuda",
        )


def _epoch(
    module, batches, config, loss_fn, optimizer, scaler, extras, device, epoch, total, on_step, advance
) -> EpochRecord:
    started = time.perf_counter()
    steps = len(batches)
    world = distributed.world()
    sums = torch.zeros(3, dtype=torch.float64)  # loss x images, right, images: of the global batches
    lr, waited = 0.0, 0.0
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    loader = batches.epoch(epoch)
    try:
        for index in range(steps):
            asked = time.perf_counter()
            inputs, labels = next(loader)
            waited += time.perf_counter() - asked
            inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            step = epoch * steps + index
            if on_step is not None:
                on_step(step, total)
            lr = learning_rate(config, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss, logits = loss_fn(module, inputs, labels)
            right = (logits.detach().argmax(1) == labels).sum()
            step_sums = torch.stack(
                [
                    loss.detach().double() * len(labels),
                    right.double(),
                    torch.tensor(len(labels), dtype=torch.float64, device=device),
                ]
            )
            if world.distributed:  # on the device: NCCL reduces GPU tensors only
                distributed.all_reduce(step_sums)  # every process sees the global batch's loss, and stops together
            step_sums = step_sums.cpu()
            value = float(step_sums[0] / step_sums[2])
            if not math.isfinite(value):
                raise EdgeResNetError(
                    f"training diverged: the loss became {value} at epoch {epoch + 1}, step {index + 1}",
                    "lower lr, or add warmup_epochs",
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if world.distributed:
                _average_gradients(extras)  # DDP averages the module's; modules trained beside it are ours to
            scaler.step(optimizer)
            scaler.update()
            sums += step_sums
            advance(float(sums[0] / sums[2]))
    finally:
        loader.close()  # the prefetching thread stops with it
    labelled = getattr(batches, "labelled", True)  # unlabelled images (distill, alpha 1) carry -1
    return EpochRecord(
        epoch + 1,
        float(sums[0] / sums[2]),
        100.0 * float(sums[1] / sums[2]) if labelled else None,
        lr,
        time.perf_counter() - started,
        data_wait_seconds=round(waited, 3),
    )


def _average_gradients(modules: Sequence[nn.Module]) -> None:
    size = distributed.world().size
    for module in modules:
        for parameter in module.parameters():
            if parameter.grad is not None:
                distributed.all_reduce(parameter.grad).div_(size)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The rate at ``step``: linear warm-up to ``config.lr``, then cosine to 0 or constant."""
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(config: TrainConfig, modules: Sequence[nn.Module]) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW, without weight decay on batch-norm weights and biases: decay
    would pull the norms' scales toward zero, which is not regularisation but damage."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules:
        for parameter in module.parameters():
            if parameter.requires_grad and id(parameter) not in seen:
                seen.add(id(parameter))
                (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


def _validated(module: nn.Module, validate: Callable[[nn.Module], float]) -> float:
    """``validate``'s result, with every submodule's train/eval mode as it was before
    (a stage may have put parts in eval mode on purpose, as QAT freezes batch norms)."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        return float(validate(module))
    finally:
        for m, training in modes:
            m.training = training


def _summary(record: EpochRecord, epochs: int) -> str:
    text = f"epoch {record.epoch}/{epochs}: loss {record.loss:.4f}, " + (
        f"train top-1 {record.train_top1:.2f}%" if record.train_top1 is not None else "no labels"
    )
    if record.val_top1 is not None:
        text += f", val top-1 {record.val_top1:.2f}%"
    return text + f", lr {record.lr:.3g}, {record.seconds:.1f} s"


# --------------------------------------------------------------------------- checkpoints


def _signature(config: TrainConfig, module: nn.Module, extras: Sequence[nn.Module], batches: TrainBatches) -> str:
    """What a checkpoint must match to be resumed: the settings, the data, and the names
    and shapes of every tensor trained (a different model or stage has other ones)."""

    def shapes(m: nn.Module) -> list:
        return [
            [key, list(value.shape), str(value.dtype)]
            for key, value in m.state_dict().items()
            if isinstance(value, torch.Tensor)
        ]

    identity = {
        "config": [type(config).__name__, config.model_dump(mode="json")],
        "data": [batches.fingerprint, batches.num_images, batches.batch_size],
        "module": shapes(module),
        "extra": [shapes(m) for m in extras],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the directory's checkpoints, newest first."""
    found = [(int(m.group(1)), path) for path in directory.iterdir() if (m := CHECKPOINT.fullmatch(path.name))]
    return sorted(found, reverse=True)


def _resume(directory: Path, signature: str, steps: int, log: Callable[[str], None]) -> dict | None:
    """The newest readable checkpoint's contents, or None to start from scratch."""
    for epoch, path in _checkpoints(directory):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError("not a checkpoint of this training loop")
            if state["signature"] != signature:
                raise EdgeResNetError(
                    f"the run directory {directory} was made with different settings (model, data or training "
                    f"options) than this run",
                    "remove it, or start without resume",
                )
            if len(state["history"]) != epoch or state["step"] != epoch * steps:
                raise ValueError(f"it holds {len(state['history'])} epochs, {state['step']} steps")
        except EdgeResNetError:
            raise
        except Exception as error:  # truncated or damaged: torch, zipfile and pickle raise many kinds
            log(f"skipping unreadable checkpoint {path.name} ({type(error).__name__}: {error})")
            continue
        log(f"resuming after epoch {epoch} from {path}")
        return state
    return None


def _save(
    directory: Path,
    signature: str,
    module: nn.Module,
    extras: Sequence[nn.Module],
    optimizer: torch.optim.Optimizer,
    scaler,
    history: list[EpochRecord],
    steps: int,
) -> None:
    """Write this epoch's checkpoint atomically (a kill mid-write leaves the previous one
    intact), then delete all but the newest few."""
    epoch = len(history)
    path = directory / f"epoch-{epoch:03d}.pt"
    temporary = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "format": FORMAT,
            "signature": signature,
            "step": epoch * steps,
            "model": module.state_dict(),
            "extra": [m.state_dict() for m in extras],
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "history": [asdict(record) for record in history],
        },
        temporary,
    )
    os.replace(temporary, path)
    for _, old in _checkpoints(directory)[KEEP_CHECKPOINTS:]:
        old.unlink(missing_ok=True)


def _progress_bar(show: bool):
    from rich.progress import TextColumn

    return progress_bar(TextColumn("loss {task.fields[loss]:.4f}"), disable=not show)
