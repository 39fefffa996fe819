"""The training loop the distill and qat stages share: optimiser, schedule, checkpoints.

A stage supplies the loss as ``loss_fn(module, inputs, labels) -> (loss, logits)``; the
loop owns everything else. With a ``checkpoint_dir`` it writes one checkpoint per
finished epoch and, started again on the same directory, continues after the newest
readable one. Because every epoch's data order, augmentation and global RNG are seeded
by the epoch's number (and the optimiser state, step count and batch-norm statistics are
in the checkpoint), a run that was killed and restarted ends with bit-identical weights
to one that was not.
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

from ..data import progress_bar
from ..errors import EdgeResNetError
from .config import TrainConfig
from .data import TrainBatches, epoch_seed

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

CHECKPOINT = re.compile(r"epoch-(\d+)\.pt")
KEEP_CHECKPOINTS = 2
FORMAT = 1


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    loss: float  # mean over the epoch's steps
    train_top1: float  # percent, on the augmented training batches
    lr: float  # at the epoch's last step
    seconds: float
    val_top1: float | None = None


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
) -> list[EpochRecord]:
    """Train ``module`` in place for ``config.epochs`` epochs; the history of every epoch.

    ``extra_parameters``: modules trained alongside (e.g. feature adapters) and saved in
    the checkpoints. ``on_step(step, total_steps)`` runs before each step; ``validate``
    gives a top-1 percent after each epoch.
    """
    steps = len(batches)
    total = config.epochs * steps
    optimizer = _optimizer(config, [module, *extra_parameters])
    signature = _signature(config, module, extra_parameters, batches)
    history: list[EpochRecord] = []
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = _resume(checkpoint_dir, signature, steps, log)
        if state is not None:
            module.load_state_dict(state["model"])
            for extra, extra_state in zip(extra_parameters, state["extra"]):
                extra.load_state_dict(extra_state)
            optimizer.load_state_dict(state["optimizer"])
            history = [EpochRecord(**record) for record in state["history"]]
    module.train()
    with _progress_bar() as bar:
        task = bar.add_task(progress, total=total, completed=len(history) * steps, loss=math.nan)
        for epoch in range(len(history), config.epochs):
            bar.update(task, description=f"{progress} {epoch + 1}/{config.epochs}")
            # Whatever loss_fn draws from the global RNG (dropout, say) is seeded per epoch
            # too, without touching the caller's RNG.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(epoch_seed(config.seed, epoch, stream=1))
                record = _epoch(module, batches, config, loss_fn, optimizer, epoch, total, on_step,
                                lambda loss: bar.update(task, advance=1, loss=loss))
            if validate is not None:
                record.val_top1 = _validated(module, validate)
            history.append(record)
            log(_summary(record, config.epochs))
            if checkpoint_dir is not None:
                _save(checkpoint_dir, signature, module, extra_parameters, optimizer, history, steps)
    return history


def _epoch(module, batches, config, loss_fn, optimizer, epoch, total, on_step, advance) -> EpochRecord:
    started = time.perf_counter()
    steps = len(batches)
    loss_sum, right, seen, lr = 0.0, 0, 0, 0.0
    for index, (inputs, labels) in enumerate(batches.epoch(epoch)):
        step = epoch * steps + index
        if on_step is not None:
            on_step(step, total)
        lr = learning_rate(config, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            loss, logits = loss_fn(module, inputs, labels)
        value = loss.item()
        if not math.isfinite(value):
            raise EdgeResNetError(
                f"training diverged: the loss became {value} at epoch {epoch + 1}, step {index + 1}",
                "lower lr, or add warmup_epochs",
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += value
        right += int((logits.detach().argmax(1) == labels).sum())
        seen += len(labels)
        advance(loss_sum / (index + 1))
    return EpochRecord(epoch + 1, loss_sum / steps, 100.0 * right / seen, lr, time.perf_counter() - started)


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
    decay, no_decay, seen = [], [], set()
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
    text = f"epoch {record.epoch}/{epochs}: loss {record.loss:.4f}, train top-1 {record.train_top1:.2f}%"
    if record.val_top1 is not None:
        text += f", val top-1 {record.val_top1:.2f}%"
    return text + f", lr {record.lr:.3g}, {record.seconds:.1f} s"


# --------------------------------------------------------------------------- checkpoints


def _signature(config: TrainConfig, module: nn.Module, extras: Sequence[nn.Module], batches: TrainBatches) -> str:
    """What a checkpoint must match to be resumed: the settings, the data, and the names
    and shapes of every tensor trained (a different model or stage has other ones)."""

    def shapes(m: nn.Module) -> list:
        return [[key, list(value.shape), str(value.dtype)] for key, value in m.state_dict().items()
                if isinstance(value, torch.Tensor)]

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


def _save(directory: Path, signature: str, module: nn.Module, extras: Sequence[nn.Module],
          optimizer: torch.optim.Optimizer, history: list[EpochRecord], steps: int) -> None:
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
            "history": [asdict(record) for record in history],
        },
        temporary,
    )
    os.replace(temporary, path)
    for _, old in _checkpoints(directory)[KEEP_CHECKPOINTS:]:
        old.unlink(missing_ok=True)


def _progress_bar():
    from rich.progress import TextColumn

    return progress_bar(TextColumn("loss {task.fields[loss]:.4f}"))
