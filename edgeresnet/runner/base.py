"""What every runtime wrapper offers: images in, scores out, and raw calls for timing."""

from __future__ import annotations

import numpy as np


class Runtime:
    """An artifact loaded in its runtime.

    A tensor-input file (the default) is called with normalised float32 NCHW batches and
    returns logits; an image-input one (`image_input`, built with --image-input) with
    uint8 NHWC RGB pixels, and returns probabilities. Exported files have a static batch
    of 1, as an app runs them, so a batch is fed one image at a time. Subclasses
    implement `invoke` (one run on the file's own input) and `io_specs`; they override
    `to_raw` / `to_logits` where the file's layout or dtype differs from the caller's.
    """

    image_input: bool = False
    batch: int = 1  # images per invoke: the file's first input dimension

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def io_specs(self) -> tuple[dict, dict]:
        """(input, output) as manifest TensorSpec fields: name, shape, dtype, layout, scale, zero_point."""
        raise NotImplementedError

    def to_raw(self, batch: np.ndarray) -> np.ndarray:
        if self.image_input:  # the pixels as they are: the file does the rest, as in an app
            return np.ascontiguousarray(batch, dtype=np.uint8)
        return np.ascontiguousarray(batch, dtype=np.float32)

    def to_logits(self, raw_output: np.ndarray) -> np.ndarray:
        return raw_output.astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Scores for any number of images, fed `self.batch` at a time (the last chunk padded)."""
        size, outputs = self.batch, []
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            real = len(chunk)
            if real < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - real, axis=0)])
            outputs.append(self.to_logits(self.invoke(self.to_raw(chunk))).reshape(size, -1)[:real])
        return np.concatenate(outputs)

    @property
    def input_layout(self) -> str:
        """How callers arrange a batch for `__call__`: what evaluate() is asked for."""
        return "NHWC" if self.image_input else "NCHW"


def tensor_spec(name: str, shape, dtype: str = "float32", layout: str | None = None) -> dict:
    return {"name": name, "shape": [int(d) for d in shape], "dtype": dtype, "layout": layout}
