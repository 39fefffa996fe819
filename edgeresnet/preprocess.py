"""How raw images become the tensor a model expects.

The spec travels with every model and artifact (it is written into each manifest), so
that the runner, an Android app and an iOS app feed the exported file exactly what the
PyTorch model was trained on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(BaseModel):
    """Resize, crop, scale to [0, 1], normalise; the model takes NCHW float32.

    ``resize`` scales the shorter side to that many pixels (None: no resize);
    ``crop`` takes a centre crop of ``input_size`` after it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: int = Field(gt=0, le=4096)
    resize: int | None = Field(default=None, gt=0, le=8192)
    center_crop: bool = True
    # Per colour in R, G, B order whatever the channel order; one value for "L" (grayscale).
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: Literal["RGB", "BGR", "L"] = "RGB"

    @property
    def channels(self) -> int:
        return 1 if self.channel_order == "L" else 3

    def grayscale(self) -> Preprocess:
        """The same spec for a one-channel model: luma (as Pillow's "L"), the colours' mean statistics."""
        mean, std = sum(self.mean) / len(self.mean), sum(self.std) / len(self.std)
        return self.model_copy(update={"channel_order": "L", "mean": (mean,), "std": (std,)})

    @model_validator(mode="after")
    def _std_positive(self):
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"{self.channel_order} needs {self.channels} mean and std values, "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.resize is not None and self.resize < self.input_size:
            raise ValueError(f"resize ({self.resize}) must be at least input_size ({self.input_size})")
        return self

    @classmethod
    def cifar(cls) -> Preprocess:
        return cls(input_size=32, resize=None)

    @classmethod
    def imagenet(cls, input_size: int = 224) -> Preprocess:
        return cls(input_size=input_size, resize=round(input_size * 256 / 224))

    @classmethod
    def for_family(cls, family: str) -> Preprocess:
        """The default for a model family: 'cifar' or 'imagenet'."""
        return cls.cifar() if family == "cifar" else cls.imagenet()
