"""Post-training quantization, step one: choose the images that set int8 activation ranges.

The ranges themselves are computed by each target's converter (the TFLite converter
runs the representative images through the float graph it quantizes), because only
then do they match that runtime's kernels. What this stage owns is which images, how
many, and that the choice is seeded and recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..data import ImageDataset, sample_pixels
from ..errors import DataError
from ..model import Model


class CalibrationConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    size: int = Field(default=256, ge=1, le=100_000)  # images; a few hundred is plenty for BN-folded ResNets
    seed: int = 0


@dataclass(frozen=True)
class Calibration:
    pixels: np.ndarray  # NHWC uint8 RGB at the model's input size; each converter normalises as its graph needs
    source: str
    seed: int

    def describe(self) -> dict:
        return {"images": len(self.pixels), "source": self.source, "seed": self.seed}


def calibrate(model: Model, data: ImageDataset, config: CalibrationConfig = CalibrationConfig()) -> Calibration:
    if len(data) == 0:
        raise DataError(f"no calibration images in {data.source}", "pass a data set with images")
    pixels = sample_pixels(data, model.preprocess, min(config.size, len(data)), seed=config.seed)
    return Calibration(pixels=pixels, source=data.source, seed=config.seed)
