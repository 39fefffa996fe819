"""The tflite targets' Exporter: .tflite files, verified in LiteRT.

Every TFLite precision of one model is converted in one child process (one onnx2tf run,
one TensorFlow start-up); what goes into the file besides the network comes from here: its
metadata for Android (``tflite_description``) and, for a model trained for TFLite int8, its
learned activation ranges (``learned_ranges``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np

from ...data import normalize, working
from ...models.model import Model
from ..exporter import Check, Checked, Conversion
from ..targets import Target
from ..verify import IMAGE_INPUT_SIMULATION_AGREEMENT, SIMULATION_AGREEMENT, run_here
from .convert import export_tflite


class TFLiteExporter:
    tools = ("onnx2tf", "tensorflow", "ai-edge-litert")

    def reads_onnx(self, model: Model, target: Target) -> bool:
        return True

    def simulates(self, reference: Model) -> bool:
        return True  # our TFLite simulator (the ptq and qat stages') computes its integer arithmetic

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        assert job.onnx is not None  # reads_onnx: export wrote it
        model, config = job.model, job.config
        outputs = {t.precision: job.paths[t] for t in targets}
        with job.converting(targets, " (onnx2tf and TensorFlow, one run for all)"), working("TFLite conversion"):
            export_tflite(
                job.onnx,
                outputs,
                workdir=job.work / "tflite",
                samples=job.tensors,
                calibration=job.calibration,
                preprocess=model.preprocess,
                image_input=config.image_input,
                io_dtypes=config.tflite_io,
                description=tflite_description(model, config.image_input),
                qat=learned_ranges(model, job.calibration) if "int8" in outputs else None,
            )

    def verify(self, check: Check) -> Checked:
        # A file with the image input normalises the pixels with int8 ops the simulator (fed
        # normalised tensors) does not model: verify.py says why its bar is lower.
        bar = IMAGE_INPUT_SIMULATION_AGREEMENT if check.image_input else SIMULATION_AGREEMENT
        return run_here(check, simulation_agreement=bar)

    def describe(self, target: Target, path: Path, checked: Checked) -> dict[str, Any] | None:
        return checked.validation


def learned_ranges(model: Model, calibration: np.ndarray | None) -> dict | None:
    """For a model trained for TFLite int8: its learned ranges, and how the converter's graph shows each point."""
    if model.qat is None or model.qat.scheme != "tflite" or calibration is None:
        return None
    import torch

    from ...quantization.tflite import ranges, signatures
    from ...quantization.tflite_layouts import QatResNet

    # A tflite-scheme model's module is our TFLite simulator, whichever layout it was prepared for.
    simulator = cast(QatResNet, model.module)
    images = calibration[:4]
    return {
        "ranges": ranges(simulator),
        "images": images,
        "signatures": signatures(simulator, torch.from_numpy(normalize(images, model.preprocess))),
    }


def tflite_description(model: Model, image_input: bool) -> dict:
    """What the TFLite metadata tells Android Studio and the Task Library about the file."""
    from ..._version import __version__

    p = model.preprocess
    if image_input:
        # The file normalises inside: the app feeds raw pixels (mean 0, std 1).
        mean, std, value_range = [0.0] * 3, [1.0] * 3, (0.0, 255.0)
        input_text = (
            f"RGB image, {p.input_size}x{p.input_size}, uint8 (resize and crop it first); normalised "
            f"inside the model as (x/255 - mean)/std with mean {list(p.mean)}, std {list(p.std)}"
        )
        output_text = "class probabilities"
    else:
        # In pixel units, as the Task Library applies (x - mean) / std to a float input.
        mean, std = [255.0 * m for m in p.mean], [255.0 * s for s in p.std]
        value_range = (min(-m / s for m, s in zip(mean, std)), max((255.0 - m) / s for m, s in zip(mean, std)))
        input_text = (
            f"{p.channel_order} image, {p.input_size}x{p.input_size}, NHWC, normalised as "
            f"(x/255 - mean)/std with mean {list(p.mean)}, std {list(p.std)}"
        )
        output_text = "logits (apply softmax for probabilities)"
    return {
        "name": model.arch,
        "version": __version__,
        "author": "edgeresnet",
        "license": "see the model's source",
        "description": f"{model.arch} image classifier, {model.num_classes} classes, exported by edgeresnet",
        "input_description": input_text,
        "mean": mean,
        "std": std,
        "input_min": value_range[0],
        "input_max": value_range[1],
        "output_description": output_text,
        "labels": list(model.labels) if model.labels else None,
        "output_name": "probability" if image_input else "logits",
    }
