"""Runs a .onnx file through onnxruntime: the reference every other runtime is compared with."""

from __future__ import annotations

import numpy as np

from ..errors import EdgeResNetError


class ONNXModel:
    def __init__(self, path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgeResNetError("onnxruntime is not installed", 'install it: pip install "edgeresnet[onnx]"') from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: raw_input})[0]

    def to_raw(self, image_nchw: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image_nchw, dtype=np.float32)

    def __call__(self, batch_nchw: np.ndarray) -> np.ndarray:
        return np.concatenate([self.invoke(self.to_raw(batch_nchw[i : i + 1])) for i in range(len(batch_nchw))])
