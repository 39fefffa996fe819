"""Runs a .tflite file: LiteRT if installed, else tflite-runtime, else TensorFlow's interpreter."""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from ..errors import EdgeResNetError, first_line
from .base import Runtime


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter
    except ImportError:
        raise EdgeResNetError(
            "no TFLite runtime is installed", 'install one: pip install "edgeresnet[runner]" (ai-edge-litert)'
        ) from None


class TFLiteModel(Runtime):
    """A .tflite classifier: float NCHW batches in, float logits out (or pixels in and
    probabilities out for an image-input file).

    Quantized tensor inputs and outputs are (de)quantized here with the file's own scale
    and zero point, so callers compare every precision on the same float footing.
    """

    def __init__(self, path, threads: int | None = None, batch: int = 1):
        interpreter_class = _interpreter_class()
        try:
            with _native_stderr_silenced():  # LiteRT announces its XNNPACK delegate on every load
                self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
                if batch != 1:  # exported with batch 1, as apps run it; resizable for throughput
                    detail = self.interpreter.get_input_details()[0]
                    self.interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgeResNetError(f"{path} is not a valid TFLite model: {first_line(str(exc))}") from None
        self.batch = batch
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.nhwc = self.input["shape"][-1] in (1, 3)

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        """One run on an input already in the file's layout and dtype (what latency timing uses)."""
        self.interpreter.set_tensor(self.input["index"], raw_input)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def to_raw(self, batch: np.ndarray) -> np.ndarray:
        if self.image_input:
            return super().to_raw(batch)
        x = batch.transpose(0, 2, 3, 1) if self.nhwc else batch
        return quantize(x, self.input)

    def to_logits(self, raw_output: np.ndarray) -> np.ndarray:
        return dequantize(raw_output, self.output)

    def io_specs(self) -> tuple[dict, dict]:
        return _spec(self.input, "NHWC" if self.nhwc else "NCHW"), _spec(self.output, None)


def _spec(detail: dict, layout: str | None) -> dict:
    """What the file itself declares about a tensor, quantization included."""
    scale, zero_point = detail["quantization"]
    quantized = detail["dtype"] != np.float32 and scale != 0  # a uint8 image input cast inside has no scale
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "layout": layout,
        "scale": float(scale) if quantized else None,
        "zero_point": int(zero_point) if quantized else None,
    }


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return np.ascontiguousarray(x, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


@contextlib.contextmanager
def _native_stderr_silenced():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
