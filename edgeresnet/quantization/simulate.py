"""Post-training quantization of a Model into a simulator of one runtime's int8 arithmetic.

The ptq stage (``stages/ptq.py``) and ``export`` (an int8 target of a float model) both
quantize through here: the simulator's parameters are what the file holds, so export can
check the file against it. How ranges and biases are chosen: ``ptq.py`` beside this.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..data import normalize
from ..models.model import Model, QatState

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


def can_simulate(model: Model, scheme: str) -> bool:
    """Whether ptq can simulate ``scheme``'s int8 arithmetic for this model's layout."""
    from . import openvino_ir, tflite

    if scheme == "tflite":
        return tflite.knows(model.module)
    return scheme == "openvino" and openvino_ir.knows(model.module)


@torch.no_grad()
def simulate(model: Model, pixels: np.ndarray, scheme: Scheme, config: PtqConfig = PtqConfig()) -> Model:
    """``model`` quantized for ``scheme``'s int8 arithmetic, calibrated on ``pixels`` (uint8 NHWC,
    ``calibrate(...).pixels``). ``model`` itself is not changed.

    Example::

        calibration = calibrate(model, open_dataset("train.zip"))
        tflite_model = ptq(model, calibration.pixels, "tflite")
        export(tflite_model, parse_targets("tflite-int8"), Path("out"), samples=..., calibration=calibration.pixels)
    """
    from . import openvino_cpu, openvino_ir, tflite
    from .ptq import quantize_post_training

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
