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
    precision: Literal["fp32", "bf16"] = "fp32"
