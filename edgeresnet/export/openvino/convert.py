"""ONNX -> OpenVINO IR (.xml + .bin) in fp32, fp16 or int8 (NNCF post-training quantization);
a model trained for OpenVINO int8 (the qat stage) -> an int8 IR with its learned ranges.

OpenVINO compresses weights to fp16 on save unless told not to; fp32 and int8 files are
saved with `compress_to_fp16=False` so that they hold what their name says. int8 is
NNCF's default scheme for CPUs (symmetric per-channel int8 weights, per-tensor int8
activations) calibrated on the user's images, with NNCF's full bias correction rather
than its fast one: on the CIFAR ResNet-20 the fast one left 97.9% top-1 agreement with
PyTorch on 512 test images, the full one 99.0%, for 6 s more.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...backends import telemetry_declined
from ...data import channel_indices
from ...errors import ConversionError, EdgeResNetError, first_line, require
from ...preprocess import Preprocess
from ..onnx.convert import INPUT_NAME, OUTPUT_NAME

if TYPE_CHECKING:
    from torch.nn import Module as torch_module


def export_openvino(
    source: Path | torch_module,
    output: Path,
    precision: str,
    *,
    calibration: np.ndarray | None = None,
    preprocess: Preprocess | None = None,
    labels: tuple[str, ...] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Path:
    """Write `output` (.xml, with its .bin beside it). `calibration` is NCHW float32, normalised.

    `source` is an ONNX file, or a PyTorch module of OpenVINO's int8 arithmetic: our CPU
    simulator (quantization/openvino_cpu.py, from the ptq or qat stage), written with its
    parameters, or NNCF's quantized module, whose fake quantization becomes the IR's
    FakeQuantize operations; no calibration happens (`input_shape` traces it).
    With `preprocess`, the IR takes a uint8 NHWC RGB image and returns probabilities
    (see image_classifier). `labels` go into the IR's rt_info, where OpenVINO's Model API
    looks for them.
    """
    require(("openvino", "nncf"), "OpenVINO export", "openvino")
    with telemetry_declined():
        import openvino as ov

        try:
            if isinstance(source, Path):
                model = ov.convert_model(str(source))
                if precision == "int8":
                    model = _quantize(model, calibration)
            else:
                model = _convert_trained(source, input_shape)
            if preprocess is not None:
                # After quantization, so that NNCF calibrates the same graph in both cases.
                model = image_classifier(model, preprocess)
            model.set_rt_info("Classification", ["model_info", "model_type"])
            if labels:
                model.set_rt_info(" ".join(label.replace(" ", "_") for label in labels), ["model_info", "labels"])
            _stable_names(model)
            ov.save_model(model, str(output), compress_to_fp16=(precision == "fp16"))
        except EdgeResNetError:
            raise
        except Exception as exc:  # the converter's own reason names the failing node
            raise ConversionError(
                f"OpenVINO {precision} conversion failed: {first_line(str(exc)) or type(exc).__name__}"
            ) from exc
    return output


def _convert_trained(module, input_shape):
    import openvino as ov
    import torch

    from ...quantization.openvino_cpu import CpuSimulator
    from ...quantization.openvino_ir import to_openvino

    if isinstance(module, CpuSimulator):  # our simulator: its parameters, written as they are
        return to_openvino(module.qat, tuple(input_shape))
    with warnings.catch_warnings():  # the tracer's check warns that fake quantization is "not deterministic"
        warnings.simplefilter("ignore")
        model = ov.convert_model(module.eval(), example_input=torch.zeros(input_shape), input=[tuple(input_shape)])
    # The names the ONNX path gives, so that every OpenVINO file of a model reads the same.
    model.input(0).set_names({INPUT_NAME})
    model.output(0).set_names({OUTPUT_NAME})
    return model


def image_classifier(model, preprocess: Preprocess):
    """The IR with its preprocessing built in by OpenVINO's PrePostProcessor, and a softmax.

    The input becomes uint8 NHWC RGB pixels; the steps convert them to float, reorder the
    channels for a BGR model, subtract 255 mean and divide by 255 std per channel, and
    transpose to the network's NCHW. OpenVINO's CPU plugin fuses them into the first layer.
    """
    import openvino as ov
    from openvino import opset13
    from openvino.preprocess import ColorFormat, PrePostProcessor

    order = channel_indices(preprocess)
    ppp = PrePostProcessor(model)
    image = ppp.input()
    image.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.RGB)
    image.model().set_layout(ov.Layout("NCHW"))
    steps = image.preprocess().convert_element_type(ov.Type.f32)
    if preprocess.channel_order == "BGR":
        steps.convert_color(ColorFormat.BGR)
    steps.mean([255.0 * preprocess.mean[c] for c in order]).scale([255.0 * preprocess.std[c] for c in order])
    ppp.output().postprocess().custom(lambda logits: opset13.softmax(logits, 1).output(0))
    model = ppp.build()
    model.output(0).set_names({"probabilities"})
    return model


# OpenVINO names a node it creates (the PrePostProcessor's, for one) "<Type>_<n>", n a
# process-wide counter: a second export in the same process would write other names.
_AUTO_NAME = re.compile(r"^[A-Za-z]+_\d+$")


def _stable_names(model) -> None:
    """Rename auto-named nodes by their place in the graph, so that the .xml is reproducible."""
    for index, op in enumerate(model.get_ordered_ops()):
        if _AUTO_NAME.match(op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")


def _quantize(model, calibration: np.ndarray | None):
    import nncf

    if calibration is None or len(calibration) == 0:
        raise ConversionError(
            "int8 export needs calibration images", "pass --data or --train-data with images, labelled or not"
        )
    samples = [calibration[i : i + 1] for i in range(len(calibration))]
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples), fast_bias_correction=False)
