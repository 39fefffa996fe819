"""Runs a Core ML package through Core ML itself: macOS only (coremltools' predict).

Reads what to feed from the package's own description: a tensor input takes the
normalised NCHW batch, an image input a picture (Core ML scales and normalises inside);
a classifier's output is a label -> probability map, put back in the manifest's label
order so that scores line up with every other runtime's.
"""

from __future__ import annotations

import platform

import numpy as np

from ..errors import EdgeResNetError
from .base import Runtime, tensor_spec


class CoreMLModel(Runtime):
    def __init__(
        self,
        path,
        threads: int | None = None,
        batch: int = 1,
        labels: list[str] | None = None,
        compute_units: str = "CPU_ONLY",
    ):
        if platform.system() != "Darwin":
            raise EdgeResNetError(f"{path} needs Core ML, which runs only on macOS", "bench the package on a Mac")
        if batch != 1:
            raise EdgeResNetError(f"{path} takes one image per prediction", "bench it with --batch 1")
        try:
            import coremltools as ct
        except ImportError:
            raise EdgeResNetError("coremltools is not installed", "install it: pip install coremltools") from None
        try:
            # CPU only by default: what the other runtimes are measured on; ALL lets Core ML choose the ANE/GPU.
            self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        except Exception as exc:  # Core ML's errors come as many types; its message says what is wrong
            raise EdgeResNetError(f"Core ML cannot load {path}: {' '.join(str(exc).split())[:300]}") from None
        description = self.model.get_spec().description
        self.input_feature = description.input[0]
        self.is_image = self.input_feature.type.WhichOneof("Type") == "imageType"
        self.output_name = description.predictedProbabilitiesName or description.output[0].name
        self.labels = labels
        self.batch = 1

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        feed: object  # what predict takes: a PIL image for an image input, else the array
        if self.is_image:
            from PIL import Image

            feed = Image.fromarray(np.ascontiguousarray(raw_input[0]), "RGB")
        else:
            feed = raw_input
        scores = self.model.predict({self.input_feature.name: feed})[self.output_name]
        if isinstance(scores, dict):  # a classifier: label -> probability
            if not self.labels:
                raise EdgeResNetError("a Core ML classifier needs the manifest's labels to order its scores")
            return np.asarray([[scores[label] for label in self.labels]], dtype=np.float32)
        return np.asarray(scores, dtype=np.float32).reshape(1, -1)

    def io_specs(self) -> tuple[dict, dict]:
        if self.is_image:
            size = self.input_feature.type.imageType
            inputs = tensor_spec(self.input_feature.name, [1, size.height, size.width, 3], "uint8", "NHWC")
        else:
            shape = list(self.input_feature.type.multiArrayType.shape)
            inputs = tensor_spec(self.input_feature.name, shape, layout="NCHW")
        classes = len(self.labels) if self.labels else 0
        return inputs, tensor_spec(self.output_name, [1, classes])
