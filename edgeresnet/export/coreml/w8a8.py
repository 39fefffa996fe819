"""int8 weights and int8 activations for Core ML (W8A8), calibrated on Linux.

Core ML's own activation quantization (``coremltools.optimize.coreml.linear_quantize_activations``)
calibrates by running the model, which only macOS can. The path that works everywhere is
coremltools' PyTorch quantizer: ``LinearQuantizer`` inserts fake-quantization with Core
ML's scheme (int8 weights, symmetric, per output channel; 8-bit activations, one scale
per tensor), observes the ranges of the user's calibration images without training, and
``finalize`` leaves quantize/dequantize pairs that ``ct.convert`` turns into an ML Program
with integer activations (iOS 17+). The quantization-aware training stage will reuse this
function's output format: a model whose module already carries the quantization.

Because the file cannot run on Linux, the fake-quantized PyTorch module is what can be
measured here: export() records its agreement with FP32 as a simulation, and says so.
"""

from __future__ import annotations

import numpy as np
import torch

from ...backends import converter_quiet
from ...errors import ConversionError
from ...models.model import Model
from ...quantization.coreml import w8a8_quantizer

CALIBRATION_BATCH = 32


def quantize_w8a8(model: Model, calibration: np.ndarray | None) -> Model:
    """`model` with W8A8 quantization inserted and calibrated; `calibration` is NCHW float32, normalised."""
    if calibration is None or len(calibration) == 0:
        raise ConversionError(
            "coreml-w8a8 export needs calibration images", "pass --data or --train-data with images, labelled or not"
        )
    images = torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))
    with converter_quiet():
        # Observers on from step 0, batch norm never frozen or folded by training: no training happens.
        quantizer = w8a8_quantizer(model.copy_module().eval(), milestones=[0, 1_000_000, 1_000_000, 0])
        prepared = quantizer.prepare(example_inputs=(images[:1],), inplace=True)  # on our copy
        quantizer.step()
        prepared.eval()  # batch-norm statistics stay those of the trained model
        with torch.no_grad():
            for start in range(0, len(images), CALIBRATION_BATCH):
                prepared(images[start : start + CALIBRATION_BATCH])
        quantized = quantizer.finalize(inplace=True).eval()
    return model.replace(
        module=quantized, options={**model.options, "quantization": "coreml-w8a8", "source_sha256": model.fingerprint()}
    )
