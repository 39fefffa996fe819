"""The ptq stage: post-training quantization to int8, no training.

    calibration images (``calibrate``) -> per int8 runtime, a simulator of its integer
    arithmetic with ranges and biases chosen on them (``ptq``) -> export writes exactly that

``calibrate`` chooses which images, how many, seeded and recorded. ``ptq`` returns, for one
runtime, a Model whose ``module`` simulates that runtime's int8 arithmetic (as the qat stage's
does, without training): tflite for every layout the TFLite simulator knows, openvino for the
layouts ``quantization/openvino_ir.knows`` (the zoo's, and others of their ops and SE gates).
The exporter puts its ranges and weights into the file and checks the file against the
simulator. The simulation itself, and the settings (``PtqConfig``), live in
``quantization/simulate.py``, which export also calls for an int8 target of a float model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import ImageDataset, sample_pixels
from ..errors import DataError
from ..models.model import Model
from ..quantization.simulate import PtqConfig, Scheme, can_simulate, simulate

__all__ = ["Calibration", "PtqConfig", "calibrate", "ptq", "supports"]


@dataclass(frozen=True)
class Calibration:
    pixels: np.ndarray  # NHWC uint8 RGB at the model's input size; each converter normalises as its graph needs
    source: str
    seed: int

    def describe(self) -> dict:
        return {"images": len(self.pixels), "source": self.source, "seed": self.seed}


def calibrate(model: Model, data: ImageDataset, config: PtqConfig = PtqConfig()) -> Calibration:
    """The calibration images: ``config.size`` of ``data``, drawn with ``config.seed``.

    Args:
        model: the model they are for: its preprocessing sets their size (resize and crop).
        data: the images to draw from (labelled or not), e.g. the training set.
        config: ``size`` (how many; all of ``data`` if it has fewer) and ``seed``.

    Returns a Calibration: ``pixels`` (uint8 NHWC RGB, what ``ptq`` and ``export`` take), the
    data's ``source`` and the ``seed``.

    Example::

        model = edgeresnet.load_model("resnet20.th")
        calibration = edgeresnet.calibrate(model, edgeresnet.open_dataset("cifar10/train.zip"))
        print(calibration.describe())
    """
    if len(data) == 0:
        raise DataError(f"no calibration images in {data.source}", "pass a data set with images")
    pixels = sample_pixels(data, model.preprocess, min(config.size, len(data)), seed=config.seed)
    return Calibration(pixels=pixels, source=data.source, seed=config.seed)


def supports(model: Model, scheme: str) -> bool:
    """Whether ptq can simulate ``scheme``'s int8 arithmetic for this model's layout."""
    return can_simulate(model, scheme)


def ptq(model: Model, pixels: np.ndarray, scheme: Scheme, config: PtqConfig = PtqConfig()) -> Model:
    """``model`` quantized for ``scheme``'s int8 arithmetic, calibrated on ``pixels`` (uint8 NHWC,
    ``calibrate(...).pixels``). ``model`` itself is not changed.

    Args:
        model: the float model (a Model; ``supports(model, scheme)`` says whether its layout can be).
        pixels: the calibration images that set the activation ranges, ``calibrate(...).pixels``.
        scheme: whose int8 arithmetic to simulate: "tflite" or "openvino".
        config: how ranges are chosen, bias correction, rounding (nearest or AdaRound), batch size.

    Example::

        from edgeresnet.data import sample_pixels

        model = edgeresnet.load_model("resnet20.th")
        calibration = edgeresnet.calibrate(model, edgeresnet.open_dataset("cifar10/train.zip"))
        tflite_model = edgeresnet.ptq(model, calibration.pixels, "tflite")
        samples = sample_pixels(edgeresnet.open_dataset("cifar10/test.zip"), model.preprocess, 512)
        edgeresnet.export(tflite_model, edgeresnet.parse_targets(["tflite-int8"]), Path("out"),
                          samples=samples, calibration=calibration.pixels)
    """
    return simulate(model, pixels, scheme, config)
