"""Shuffled, augmented training batches: ``(inputs float32 NCHW normalised, labels int64)``.

Epoch ``k``'s order and augmentation come from a generator seeded by ``(seed, k)`` alone,
so an epoch is the same whether the run went straight through or was resumed before it.
Under torchrun every process draws the same global batches and takes its own slice of
each (see edgeresnet/distributed.py): the batches of any number of processes together are
those of one. A background thread may prepare the next batches while the current one trains
(``Execution.prefetch``).

Small inputs (CIFAR's 32x32) are decoded once, resized and cropped as for evaluation,
into one uint8 NHWC array (50,000 images: 150 MB): decoding a JPEG costs more than a
training step's share of it, so re-decoding every epoch would dominate. Large inputs
would not fit that way (ImageNet at 224: 7.5 GB per 50,000), so they are decoded per
batch, and their random resized crop is taken from the full-size image.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from .. import distributed
from ..data import ImageDataset, batches, normalize
from ..data.transforms import prepare_pil as _prepare_pil
from ..errors import DataError, EdgeResNetError
from ..preprocess import Preprocess
from .augment import LARGE_INPUT, augment, crop_box, resolve
from .config import Execution, TrainConfig

DECODE_BATCH = 512


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed 64-bit seed for one epoch; ``stream`` separates independent uses."""
    state = np.random.SeedSequence([seed % 2**64, epoch, stream]).generate_state(1, np.uint64)
    return int(state[0])


class TrainBatches:
    """An epoch-indexed source of training batches; ``len()`` is the steps per epoch.

    Global batches are ``min(batch_size, images)`` images and the last incomplete one is
    dropped, so that every step sees a full batch (batch norm is unstable on a few images).
    This process gets its slice of each.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        spec: Preprocess,
        config: TrainConfig,
        *,
        progress: bool = True,
        execution: Execution = Execution(),
    ):
        sample = dataset.subset(config.limit, config.seed)
        _check_size(sample, config)
        world = distributed.world()
        self.spec = spec
        self.seed = config.seed
        self.mode = resolve(config.augment, spec.input_size)
        self.batch_size = min(config.batch_size, len(sample))  # the global batch
        if self.batch_size % world.size:
            raise EdgeResNetError(
                f"a batch of {self.batch_size} images does not split evenly over {world.size} processes",
                f"set the stage's batch_size to a multiple of {world.size}",
            )
        local = self.batch_size // world.size
        self.part = slice(world.rank * local, (world.rank + 1) * local)  # this process's images of each batch
        self.labels = torch.from_numpy(np.array(sample.labels, dtype=np.int64))
        self.labelled = sample.labelled  # without, every label is -1: only a loss on the teacher's outputs applies
        self.fingerprint = sample.fingerprint()  # which images: part of a checkpoint's identity
        self.workers = execution.workers or min(4, os.cpu_count() or 1)
        self.prefetch = execution.prefetch_batches
        self.pin = execution.device == "cuda"  # page-locked batches copy to the GPU asynchronously
        self._sample = sample
        self._pixels = _decode_all(sample, spec, progress and world.is_main) if spec.input_size < LARGE_INPUT else None

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch ``epoch``'s batches (0-based; this process's slices), in its own shuffled order."""
        return prefetched(self._epoch(epoch), self.prefetch)

    def _epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(len(self.labels), generator=generator)
        pool = None if self._pixels is not None else ThreadPoolExecutor(self.workers)
        try:
            for step in range(len(self)):
                index = order[step * self.batch_size : (step + 1) * self.batch_size]
                mine = index[self.part]
                if pool is None:
                    assert self._pixels is not None  # no pool: the images were decoded up front
                    inputs = augment(
                        torch.from_numpy(normalize(self._pixels[mine.numpy()], self.spec)),
                        self.mode,
                        generator,
                        self.part,
                        self.batch_size,
                    )
                else:
                    inputs = self._decoded(mine, generator, pool)
                yield (inputs.pin_memory() if self.pin else inputs), self.labels[mine]
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _decoded(self, mine: torch.Tensor, generator: torch.Generator, pool: ThreadPoolExecutor) -> torch.Tensor:
        """This process's large images of a batch, decoded now; Pillow decodes and resizes outside
        the GIL, so threads help."""
        if self.mode == "resize-crop-flip":
            # Each image's crop and flip come from its own seed, drawn for the whole batch: the
            # boxes depend on image sizes, which a process knows only for its own images.
            seeds = torch.randint(0, 2**62, (self.batch_size,), generator=generator)[self.part]
            pixels = np.stack(list(pool.map(self._cropped, mine.tolist(), seeds.tolist())))
            return torch.from_numpy(normalize(pixels, self.spec))
        images = pool.map(lambda i: _prepare_pil(self._sample.pil_image(i), self.spec), mine.tolist())
        pixels = np.stack([np.asarray(im) for im in images])
        return augment(torch.from_numpy(normalize(pixels, self.spec)), self.mode, generator, self.part, self.batch_size)

    def _cropped(self, i: int, seed: int) -> np.ndarray:
        """Image ``i``: torchvision's RandomResizedCrop and a random flip, drawn from ``seed``."""
        image = self._sample.pil_image(i)
        generator = torch.Generator().manual_seed(seed)
        top, left, h, w = crop_box(image.height, image.width, generator)
        size = self.spec.input_size
        pixels = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)))
        return pixels[:, ::-1] if torch.rand(1, generator=generator).item() < 0.5 else pixels


def prefetched(items: Iterator, depth: int) -> Iterator:
    """``items``, produced up to ``depth`` ahead on a background thread (0: in the caller's).

    An error in the producer is raised in the consumer; a consumer that stops early (an
    exception, a Ctrl-C) stops the producer too.
    """
    if depth == 0:
        yield from items
        return
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer, who raises it
            put(error)
        finally:
            close = getattr(items, "close", None)  # a generator's: runs its cleanup; other iterators have none
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="edgeresnet-prefetch", daemon=True)
    try:
        thread.start()  # inside: a stop signal during the start still stops the thread
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()


def _check_size(sample: ImageDataset, config: TrainConfig) -> None:
    if len(sample) == 0:
        raise DataError(f"the training data {sample.source} holds no images", "pass a data set with images to train on")
    if len(sample) < 2:
        hint = "raise limit" if config.limit is not None else "pass a data set with more images"
        raise DataError(f"training needs at least 2 images (batch norm needs two per batch), got {len(sample)}", hint)


def _decode_all(sample: ImageDataset, spec: Preprocess, progress: bool) -> np.ndarray:
    """Every image resized and cropped to the input size, as one uint8 NHWC array."""
    pixels = np.empty((len(sample), spec.input_size, spec.input_size, 3), dtype=np.uint8)
    description = f"Decoding {len(sample)} training images" if progress else None
    start = 0
    for chunk, _ in batches(sample, spec, DECODE_BATCH, layout="NHWC", normalized=False, progress=description):
        pixels[start : start + len(chunk)] = chunk
        start += len(chunk)
    return pixels
