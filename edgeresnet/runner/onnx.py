"""Runs a .onnx file through onnxruntime: the reference every other runtime is compared with."""

from __future__ import annotations

import numpy as np

from ..errors import EdgeResNetError
from .base import Runtime, tensor_spec


class ONNXModel(Runtime):
    def __init__(self, path, threads: int | None = None, batch: int = 1, providers: list | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgeResNetError(
                "onnxruntime is not installed", 'install it: pip install "edgeresnet[runner]"'
            ) from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        if providers:  # a TensorRT file without TensorRT's Python package: say which provider ran it
            self.executed_by = f"onnxruntime's {self.session.get_providers()[0]}"
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0]
        if batch != 1 and self.input.shape[0] != batch and not isinstance(self.input.shape[0], str):
            raise EdgeResNetError(f"{path} has a fixed batch of {self.input.shape[0]}", "bench it with --batch 1")
        self.batch = batch

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input.name: raw_input})[0]

    def io_specs(self) -> tuple[dict, dict]:
        return (
            tensor_spec(self.input.name, self.input.shape, layout="NCHW"),
            tensor_spec(self.output.name, self.output.shape),
        )
