"""What a Jetson (or any NVIDIA GPU) needs to build a TensorRT engine: an ONNX file.

A TensorRT engine is specific to the GPU, the TensorRT version and the build settings, so
it cannot be written here: the runner builds it on the device and caches it beside the run
(runner/tensorrt.py). Export writes what the engine is built from:

- tensorrt-fp16: the float ONNX graph; the engine runs it in float16 (the builder's FP16 flag).
- tensorrt-int8: the same graph with QuantizeLinear/DequantizeLinear pairs (explicit
  quantization), calibrated here on the user's images. TensorRT quantizes symmetrically
  (zero point 0; weights in [-127, 127], per output channel), so the pairs are written that
  way; any other scheme makes the ONNX parser refuse the file. Weights stay float behind a
  Q/DQ pair and biases stay float: TensorRT 8.6 (JetPack 6.0) and 10 both read that form.

Both files also run in onnxruntime on the CPU, which is how export verifies them here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ...errors import ConversionError
from ..onnx.convert import INPUT_NAME

# How the activation ranges are taken from the calibration images: the largest magnitude seen,
# as onnxruntime's quantize_static does by default and the raw pipelines in benchmarks/ measure.
CALIBRATION_METHOD = "MinMax"


def export_tensorrt(onnx_path: Path, path: Path, precision: str, *, calibration: np.ndarray | None, work: Path) -> Path:
    """Write the file a TensorRT engine of ``precision`` ("fp16" or "int8") is built from.

    ``calibration`` are normalised NCHW float32 tensors (int8 only).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if precision == "fp16":
        shutil.copy(onnx_path, path)
        return path
    if calibration is None or not len(calibration):
        raise ConversionError("tensorrt-int8 needs calibration images", "pass --data (or --train-data) with images")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Images(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    work.mkdir(parents=True, exist_ok=True)
    prepared = work / "tensorrt-prepared.onnx"
    try:
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(path),
            Images(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD),
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "AddQDQPairToWeight": True,
                "QuantizeBias": False,
            },
        )
    except Exception as exc:  # onnxruntime's own reason is what the user needs
        path.unlink(missing_ok=True)
        raise ConversionError(f"tensorrt-int8: onnxruntime could not quantize the graph: {exc}") from exc
    return path


def quantization_points(path: Path) -> dict:
    """The Q/DQ pairs of an int8 file, counted, and whether every one is symmetric int8 (what
    TensorRT accepts): recorded in the manifest, and checked by the tests."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    quantizers = [node for node in model.graph.node if node.op_type == "QuantizeLinear"]
    zero_points = [constants.get(node.input[2]) for node in quantizers if len(node.input) > 2]
    symmetric = all(z is not None and z.dtype == np.int8 and not z.any() for z in zero_points) and len(
        zero_points
    ) == len(quantizers)
    return {
        "quantize_nodes": len(quantizers),
        "dequantize_nodes": sum(node.op_type == "DequantizeLinear" for node in model.graph.node),
        "symmetric_int8": bool(symmetric),
        "calibration": CALIBRATION_METHOD,
    }
