"""Training augmentation on batched NCHW tensors, every random draw from one generator.

Drawing from a ``torch.Generator`` the caller seeds per epoch (never the global RNG)
makes an epoch's augmentation the same whether or not the run was resumed. Under torchrun
each process holds a slice of the global batch (``part``: which images of how many): the
draws are made for the whole batch and the slice's applied, so an image is augmented the
same on however many processes.

* ``crop-flip`` (CIFAR): pad by 1/8 of the side, crop back to size at a random offset,
  flip half the images. Pass normalised floats: the padding is zeros, which after
  normalisation is the data set's mean colour rather than black (uint8 input works too,
  padded with black).
* ``resize-crop-flip`` (ImageNet-size inputs): torchvision's RandomResizedCrop (scale
  0.08-1 of the area, aspect ratio 3/4-4/3) resized back to the input size, and flips.
* ``none``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Mode = Literal["crop-flip", "resize-crop-flip", "none"]

# From this input size on, "auto" picks resize-crop-flip: the ImageNet recipe, where a
# pad-and-crop of 1/8 would not vary scale enough; below it, the CIFAR recipe.
LARGE_INPUT = 128
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


def resolve(augment: str, input_size: int) -> Mode:
    """The concrete mode for a config's ``augment`` ("auto" picks by input size)."""
    if augment == "auto":
        return "crop-flip" if input_size < LARGE_INPUT else "resize-crop-flip"
    if augment not in ("crop-flip", "resize-crop-flip", "none"):
        raise ValueError(f"unknown augmentation {augment!r}")
    return augment  # type: ignore[return-value]


def augment(
    x: torch.Tensor, mode: Mode, generator: torch.Generator, part: slice | None = None, total: int | None = None
) -> torch.Tensor:
    """Apply ``mode`` to a batch (N, C, H, W); returns a new tensor of the same shape.

    ``x`` may be images ``part`` of a batch of ``total``: drawn for all, applied to those.
    """
    if mode == "crop-flip":
        return crop_flip(x, generator, part=part, total=total)
    if mode == "resize-crop-flip":
        return random_flip(resized_crop(x, generator, part=part, total=total), generator, part, total)
    if mode == "none":
        return x
    raise ValueError(f"unknown augmentation mode {mode!r}")


def crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    pad: int | None = None,
    *,
    part: slice | None = None,
    total: int | None = None,
) -> torch.Tensor:
    """Zero-pad by ``pad`` (default side // 8), crop back at random offsets, flip half.

    One gather for the whole batch: each output pixel's source row and column in the
    padded batch is computed per image, with the column order reversed for flipped ones.
    """
    n, _, height, width = x.shape
    total = _draws(x, part, total)
    part = slice(0, n) if part is None else part
    pad = max(1, min(height, width) // 8) if pad is None else pad
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[part]
    left = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[part]
    flip = (torch.rand(total, generator=generator) < 0.5)[part]
    rows = top[:, None] + torch.arange(height)  # (N, H)
    columns = torch.arange(width).expand(n, width)
    columns = left[:, None] + torch.where(flip[:, None], columns.flip(1), columns)  # (N, W)
    images = torch.arange(n)[:, None, None]
    # Advanced indices split by the channel slice put their dims first: (N, H, W, C).
    out = padded[images, :, rows[:, :, None], columns[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(
    x: torch.Tensor, generator: torch.Generator, part: slice | None = None, total: int | None = None
) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(_draws(x, part, total), generator=generator) < 0.5
    flip = flip if part is None else flip[part]
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _draws(x: torch.Tensor, part: slice | None, total: int | None) -> int:
    """How many images to draw for: all of ``x``, or the ``total`` of the batch ``x`` is ``part`` of."""
    if part is None:
        return len(x)
    if total is None:
        raise ValueError("augmenting a part of a batch needs the batch's total")
    return total


def crop_box(height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop, by torchvision's RandomResizedCrop.get_params:
    up to ten tries at a random area and aspect ratio, else the centre at a fitting ratio."""
    area = height * width
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(*SCALE, generator=generator).item()
        aspect = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        w, h = width, int(round(width / RATIO[0]))
    elif in_ratio > RATIO[1]:
        w, h = int(round(height * RATIO[1])), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    size: int | None = None,
    *,
    part: slice | None = None,
    total: int | None = None,
) -> torch.Tensor:
    """A random crop of each image, resized (bilinear, antialiased) to ``size`` square
    (default: the input's height). One image at a time: every crop has its own shape."""
    _, _, height, width = x.shape
    size = height if size is None else size
    source = x.float()
    part = slice(0, len(x)) if part is None else part
    # Every image of the batch draws its box (the number of draws varies), in order; this part's are kept.
    boxes = [crop_box(height, width, generator) for _ in range(len(x) if total is None else total)][part]
    crops = []
    for image, (top, left, h, w) in zip(source, boxes):
        crop = image[None, :, top : top + h, left : left + w]
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    out = torch.cat(crops)
    if x.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(x.dtype)
