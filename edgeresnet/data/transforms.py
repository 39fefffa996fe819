"""torchvision's Resize + CenterCrop + ToTensor + Normalize on numpy and Pillow, to the bit.

From a decoded RGB image to what a model takes: resized and cropped to its input size,
then either normalised float32 or kept as uint8 pixels, in NCHW or NHWC.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from edgeresnet.preprocess import Preprocess

Layout = Literal["NCHW", "NHWC"]


def prepare(image: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Resize and crop one HWC uint8 RGB image to ``spec.input_size`` square."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HWC uint8 RGB image, got {image.dtype} of shape {image.shape}")
    if image.shape[:2] == (spec.input_size, spec.input_size) and spec.resize in (None, spec.input_size):
        return image  # the CIFAR case: nothing to do, so skip the round trip through Pillow
    return np.asarray(prepare_pil(Image.fromarray(image, "RGB"), spec))


def prepare_pil(im: Image.Image, spec: Preprocess) -> Image.Image:
    """``prepare`` on a decoded Pillow image, the form batching and training hold."""
    size = spec.input_size
    if spec.resize is None or not spec.center_crop:
        # Without a resize, or without a crop, the only way to the model's size is to
        # scale the whole image to it (aspect ratio not kept).
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return im
    # torchvision's Resize(int): the shorter side becomes `resize`, the longer is truncated.
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = spec.resize, int(spec.resize * long / short)
    new_size = (new_short, new_long) if w <= h else (new_long, new_short)
    if new_size != im.size:
        im = im.resize(new_size, Image.Resampling.BILINEAR)
    # torchvision's CenterCrop rounds the offsets with Python's round().
    w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def channel_indices(spec: Preprocess) -> list[int]:
    """Which RGB channel feeds each of the model's input channels (BGR models: reversed).
    The one definition the exporters bake into image-input files, too."""
    return [0, 1, 2] if spec.channel_order == "RGB" else [2, 1, 0]


def normalize(batch: np.ndarray, spec: Preprocess) -> np.ndarray:
    """NHWC uint8 RGB to NCHW float32: (x / 255 - mean) / std, in the spec's channel order.

    ``mean`` and ``std`` are per colour in R, G, B order (as IMAGENET_MEAN), whatever the
    channel order: a BGR model gets blue first, normalised with the blue statistics. The
    float32 operations are those of ToTensor + Normalize, so the result is bit-identical.
    """
    if spec.channel_order == "L":
        batch = luma(batch)[..., None]
        order = [0]
    else:
        order = channel_indices(spec)
    mean = np.asarray(spec.mean, dtype=np.float32)[order]
    std = np.asarray(spec.std, dtype=np.float32)[order]
    x = batch[..., order].astype(np.float32) / np.float32(255)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def luma(batch: np.ndarray) -> np.ndarray:
    """NHWC uint8 RGB to NHW uint8 gray, exactly as Pillow's convert("L") (ITU-R 601-2)."""
    weights = np.array([19595, 38470, 7471], dtype=np.uint32)
    return ((batch.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)


def arrange(batch: np.ndarray, spec: Preprocess, layout: Layout, normalized: bool) -> np.ndarray:
    """A batch of NHWC uint8 RGB pixels in the layout asked for, normalised or not."""
    if normalized:
        x = normalize(batch, spec)
        return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    # Raw RGB pixels, for an artifact that takes images (its channel order and
    # normalisation are inside it, as a camera frame would be fed to it in an app).
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if layout == "NCHW" else batch)
