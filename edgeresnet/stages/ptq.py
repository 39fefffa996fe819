"""The ptq stage: post-training quantization to int8, no training.

    calibration images (``calibrate``) -> per int8 runtime, a simulator of its integer
    arithmetic with ranges and biases chosen on them (``ptq``) -> export writes exactly that

``calibrate`` chooses which images, how many, seeded and recorded. ``ptq`` returns, for one
runtime, a Model whose ``module`` simulates that runtime's int8 arithmetic (as the qat stage's
does, without training): tflite for every layout the TFLite simulator knows, openvino for the
layouts ``quantization/openvino_ir.knows`` (the zoo's, and others of their ops and SE gates).
The exporter puts its ranges and weights into the file and checks the file against the
simulator. How the ranges and biases are chosen:
``quantization/ptq.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..data import ImageDataset, normalize, sample_pixels
from ..errors import DataError
from ..model import Model, QatState

# The int8 runtimes whose arithmetic ptq can simulate.
Scheme = Literal["tflite", "openvino"]


class PtqConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    size: int = Field(
        default=256, ge=1, le=100_000
    )  # calibration images; a few hundred is plenty for BN-folded ResNets
    seed: int = 0
    # How each activation range is chosen: the clipping with the least quantization error
    # ("mse"), a percentile of the values, or their min and max (what the converters take).
    ranges: Literal["minmax", "mse", "percentile"] = "minmax"
    percentile: float = Field(default=99.99, gt=50, le=100)  # with ranges: percentile
    # Subtract from each layer's bias the mean shift int8 causes in its outputs (Nagel et al. 2019).
    bias_correction: bool = True
    # Weights to the nearest int8 step, or up or down as each layer's output needs (AdaRound,
    # Nagel et al. 2020: minutes more per model, for little at 8 bits; benchmarks/README.md).
    rounding: Literal["nearest", "adaround"] = "nearest"
    rounding_iterations: int = Field(default=300, ge=1, le=100_000)  # AdaRound's steps per layer
    batch_size: int = Field(default=64, ge=1, le=4096)


@dataclass(frozen=True)
class Calibration:
    pixels: np.ndarray  # NHWC uint8 RGB at the model's input size; each converter normalises as its graph needs
    source: str
    seed: int

    def describe(self) -> dict:
        return {"images": len(self.pixels), "source": self.source, "seed": self.seed}


def calibrate(model: Model, data: ImageDataset, config: PtqConfig = PtqConfig()) -> Calibration:
    """The calibration images: ``config.size`` of ``data``, drawn with ``config.seed``."""
    if len(data) == 0:
        raise DataError(f"no calibration images in {data.source}", "pass a data set with images")
    pixels = sample_pixels(data, model.preprocess, min(config.size, len(data)), seed=config.seed)
    return Calibration(pixels=pixels, source=data.source, seed=config.seed)


def supports(model: Model, scheme: str) -> bool:
    """Whether ptq can simulate ``scheme``'s int8 arithmetic for this model's layout."""
    from ..quantization import openvino_ir, tflite

    if scheme == "tflite":
        return tflite.knows(model.module)
    return scheme == "openvino" and openvino_ir.knows(model.module)


@torch.no_grad()
def ptq(model: Model, pixels: np.ndarray, scheme: Scheme, config: PtqConfig = PtqConfig()) -> Model:
    """``model`` quantized for ``scheme``'s int8 arithmetic, calibrated on ``pixels`` (uint8 NHWC,
    ``calibrate(...).pixels``). ``model`` itself is not changed.

    Example::

        calibration = calibrate(model, open_dataset("train.zip"))
        tflite_model = ptq(model, calibration.pixels, "tflite")
        export(tflite_model, parse_targets("tflite-int8"), Path("out"), samples=..., calibration=calibration.pixels)
    """
    from ..quantization import openvino_cpu, openvino_ir, tflite
    from ..quantization.ptq import quantize_post_training

    batches = list(torch.from_numpy(normalize(pixels, model.preprocess)).split(config.batch_size))
    # OpenVINO's CPU kernels without VNNI sum pairs of u8 x i8 products in int16: a conv reading
    # signed codes (the image, a gate's pooled path) would overflow with full 8-bit weights.
    simulated = quantize_post_training(
        model.module,
        batches,
        ranges=config.ranges,
        percentile=config.percentile,
        bias_correction=config.bias_correction,
        rounding=config.rounding,
        rounding_iterations=config.rounding_iterations,
        prepare_simulator=openvino_ir.prepare if scheme == "openvino" else tflite.prepare,
    )
    float_module = tflite.fold(simulated, model.module)
    module = openvino_cpu.cpu_simulator(simulated) if scheme == "openvino" else simulated
    return model.replace(module=module, qat=QatState(scheme, float_module))
