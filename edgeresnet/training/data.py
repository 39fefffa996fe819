"""Shuffled, augmented training batches: ``(inputs float32 NCHW normalised, labels int64)``.

Epoch ``k``'s order and augmentation come from a generator seeded by ``(seed, k)`` alone,
so an epoch is the same whether the run went straight through or was resumed before it.

Small inputs (CIFAR's 32x32) are decoded once, resized and cropped as for evaluation,
into one uint8 NHWC array (50,000 images: 150 MB): decoding a JPEG costs more than a
training step's share of it, so re-decoding every epoch would dominate. Large inputs
would not fit that way (ImageNet at 224: 7.5 GB per 50,000), so they are decoded per
batch, and their random resized crop is taken from the full-size image.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from ..data import ImageDataset, _prepare_pil, batches, normalize
from ..errors import DataError
from ..preprocess import Preprocess
from .augment import LARGE_INPUT, augment, crop_box, random_flip, resolve
from .config import TrainConfig

DECODE_BATCH = 512


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed 64-bit seed for one epoch; ``stream`` separates independent uses."""
    state = np.random.SeedSequence([seed % 2**64, epoch, stream]).generate_state(1, np.uint64)
    return int(state[0])


class TrainBatches:
    """An epoch-indexed source of training batches; ``len()`` is the steps per epoch.

    Batches are ``min(batch_size, images)`` images and the last incomplete one is dropped,
    so that every step sees a full batch (batch norm is unstable on a few images).
    """

    def __init__(self, dataset: ImageDataset, spec: Preprocess, config: TrainConfig, *, progress: bool = True):
        sample = dataset.subset(config.limit, config.seed)
        _check_size(sample, config)
        self.spec = spec
        self.seed = config.seed
        self.mode = resolve(config.augment, spec.input_size)
        self.batch_size = min(config.batch_size, len(sample))
        self.labels = torch.from_numpy(np.array(sample.labels, dtype=np.int64))
        self.fingerprint = sample.fingerprint()  # which images: part of a checkpoint's identity
        self._sample = sample
        self._pixels = _decode_all(sample, spec, progress) if spec.input_size < LARGE_INPUT else None

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch ``epoch``'s batches (0-based), in its own shuffled order."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(len(self.labels), generator=generator)
        pool = None if self._pixels is not None else ThreadPoolExecutor(min(4, os.cpu_count() or 1))
        try:
            for step in range(len(self)):
                index = order[step * self.batch_size : (step + 1) * self.batch_size]
                if pool is None:
                    inputs = augment(torch.from_numpy(normalize(self._pixels[index.numpy()], self.spec)),
                                     self.mode, generator)
                else:
                    inputs = self._decoded(index, generator, pool)
                yield inputs, self.labels[index]
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _decoded(self, index: torch.Tensor, generator: torch.Generator, pool: ThreadPoolExecutor) -> torch.Tensor:
        """A batch of large images decoded now; Pillow decodes and resizes outside the GIL,
        so threads help. Random draws stay in this thread, in image order."""
        images = list(pool.map(self._sample.pil_image, index.tolist()))
        if self.mode == "resize-crop-flip":
            boxes = [crop_box(im.height, im.width, generator) for im in images]
            pixels = np.stack(list(pool.map(self._crop, images, boxes)))
            return random_flip(torch.from_numpy(normalize(pixels, self.spec)), generator)
        pixels = np.stack([np.asarray(im) for im in pool.map(lambda im: _prepare_pil(im, self.spec), images)])
        return augment(torch.from_numpy(normalize(pixels, self.spec)), self.mode, generator)

    def _crop(self, image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
        top, left, h, w = box
        size = self.spec.input_size
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)))


def _check_size(sample: ImageDataset, config: TrainConfig) -> None:
    if len(sample) == 0:
        raise DataError(f"the training data {sample.source} holds no images", "pass a data set with images to train on")
    if len(sample) < 2:
        hint = "raise limit" if config.limit is not None else "pass a data set with more images"
        raise DataError(
            f"training needs at least 2 images (batch norm needs two per batch), got {len(sample)}", hint
        )


def _decode_all(sample: ImageDataset, spec: Preprocess, progress: bool) -> np.ndarray:
    """Every image resized and cropped to the input size, as one uint8 NHWC array."""
    pixels = np.empty((len(sample), spec.input_size, spec.input_size, 3), dtype=np.uint8)
    description = f"Decoding {len(sample)} training images" if progress else None
    start = 0
    for chunk, _ in batches(sample, spec, DECODE_BATCH, layout="NHWC", normalized=False, progress=description):
        pixels[start : start + len(chunk)] = chunk
        start += len(chunk)
    return pixels
