"""What every runtime wrapper offers: float NCHW in, float logits out, and raw calls for timing."""

from __future__ import annotations

import numpy as np


class Runtime:
    """An artifact loaded in its runtime.

    Exported files have a static batch of 1, as an app runs them, so a batch is fed one
    image at a time. Subclasses implement `invoke` (one run on the file's own input) and
    `io_specs`; they override `to_raw` / `to_logits` where the file's layout or dtype is
    not float32 NCHW.
    """

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def io_specs(self) -> tuple[dict, dict]:
        """(input, output) as manifest TensorSpec fields: name, shape, dtype, layout, scale, zero_point."""
        raise NotImplementedError

    def to_raw(self, image_nchw: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image_nchw, dtype=np.float32)

    def to_logits(self, raw_output: np.ndarray) -> np.ndarray:
        return raw_output.astype(np.float32)

    def __call__(self, batch_nchw: np.ndarray) -> np.ndarray:
        outputs = [self.to_logits(self.invoke(self.to_raw(batch_nchw[i : i + 1]))) for i in range(len(batch_nchw))]
        return np.concatenate(outputs).reshape(len(batch_nchw), -1)


def float_spec(name: str, shape, layout: str | None = None) -> dict:
    return {"name": name, "shape": [int(d) for d in shape], "dtype": "float32", "layout": layout}
