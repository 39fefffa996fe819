"""Runs an OpenVINO IR (.xml + .bin) on the CPU, or on another device where present."""

from __future__ import annotations

import numpy as np

from ..errors import EdgeResNetError
from .base import Runtime, tensor_spec


class OpenVINOModel(Runtime):
    def __init__(self, path, threads: int | None = None, device: str = "CPU", batch: int = 1):
        try:
            import openvino as ov
        except ImportError:
            raise EdgeResNetError("OpenVINO is not installed", 'install it: pip install "edgeresnet[runner]"') from None
        core = ov.Core()
        if device not in core.available_devices:
            raise EdgeResNetError(
                f"OpenVINO device {device} is not available here", f"choose one of: {', '.join(core.available_devices)}"
            )
        config: dict[str, str | int] = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            # Pinned to f32: on CPUs with AVX512-BF16 or AMX the CPU plugin otherwise runs f32
            # and f16 models in bfloat16 (8-bit mantissa), silently, and the file would be
            # judged by arithmetic it does not hold (int8 layers run int8 either way). On ARM the
            # default is f16 (measured under qemu as a Cortex-A76, OpenVINO 2026.4: the demo
            # openvino-int8 file lost 0.33 points in f16; examples/raspberrypi/README.md).
            config["INFERENCE_PRECISION_HINT"] = "f32"
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            if batch != 1:  # exported with batch 1, as apps run it; reshapable for throughput
                model.reshape([batch, *list(model.input(0).get_partial_shape())[1:]])
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise EdgeResNetError(f"{path} is not a valid OpenVINO model: {str(exc).splitlines()[0]}") from None
        self.batch = batch
        self.request = self.compiled.create_infer_request()
        self.input = self.compiled.inputs[0]
        self.output = self.compiled.outputs[0]

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        # Written into the request's own input buffer and read from its output buffer: no
        # per-call tensor allocation or result dict, which cost ~25% of a 0.2 ms inference
        # (measured against benchmark_app on the int8 ResNet-20). The caller copies the output.
        self.request.get_input_tensor().data[...] = raw_input
        self.request.infer()
        return self.request.get_output_tensor().data

    def io_specs(self) -> tuple[dict, dict]:
        # An image-input IR takes NHWC uint8 (its PrePostProcessor converts); others NCHW float32.
        layout = "NHWC" if self.image_input else "NCHW"
        return (
            tensor_spec(self.input.get_any_name(), self.input.shape, _dtype(self.input), layout),
            tensor_spec(self.output.get_any_name(), self.output.shape, _dtype(self.output)),
        )


def _dtype(port) -> str:
    return np.dtype(port.get_element_type().to_dtype()).name
