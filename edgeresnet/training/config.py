"""How a stage trains: the options distill and qat share (a recipe sets them per stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=128, ge=2, le=8192)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(default=0.05, gt=0, le=10)  # peak learning rate, reached after the warm-up
    momentum: float = Field(default=0.9, ge=0, lt=1)  # sgd (Nesterov); adamw's beta1
    weight_decay: float = Field(default=5e-4, ge=0, le=1)
    warmup_epochs: float = Field(default=0.0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    # crop-flip: random crop of the image padded by 1/8 of its side, and horizontal flips (CIFAR);
    # resize-crop-flip: random resized crop and flips (ImageNet-size inputs); auto picks by input size.
    augment: Literal["auto", "crop-flip", "resize-crop-flip", "none"] = "auto"
    limit: int | None = Field(default=None, ge=1)  # train on a seeded subset of this many images
    seed: int = 0
    # bf16: forward passes under bfloat16 autocast (weights, optimiser and batch-norm statistics
    # stay float32). On CPUs with AMX or AVX512-BF16 a distillation step of a pruned ResNet-56
    # took 0.36 s instead of 0.63 s. For qat it makes training's simulation of int8 inexact
    # (evaluation and export stay float32).
    # fp16: float16 autocast with loss scaling, on CUDA GPUs only; bf16 is the mixed precision
    # of CPUs and of GPUs since Ampere.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # Under torchrun: batch norm normalises with the statistics of the whole global batch
    # instead of each process's slice of it (the same result as one process; worth it when a
    # process's slice is small, under 32 images, say). No effect on one process.
    sync_batchnorm: bool = False


class Execution(BaseModel):
    """Where and how the training stages run: the speed, not the result (beyond float rounding).

    Not part of a recipe nor of a run's identity, so a run may resume on other hardware.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    device: Literal["cpu", "cuda", "mps"] = "cpu"
    # Threads that decode large images (ImageNet-size JPEGs, per batch); default min(4, cores).
    workers: int | None = Field(default=None, ge=1, le=64)
    # Batches prepared ahead of the training step on a background thread; 0 prepares each in the
    # loop. Default: 2 when training on a GPU (the CPU is free meanwhile), 0 on the CPU, where the
    # thread competes with training for the cores: on 2 cores it made a ResNet-20 epoch 10-30%
    # slower and saved 1% of waiting (benchmarks/training.py).
    prefetch: int | None = Field(default=None, ge=0, le=64)

    @property
    def prefetch_batches(self) -> int:
        return self.prefetch if self.prefetch is not None else (0 if self.device == "cpu" else 2)
