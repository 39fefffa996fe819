"""The tensorrt runtime: the ONNX a TensorRT engine is built from on the device (fp16, int8 Q/DQ).

convert.py writes it; exporter.py is the runtime's Exporter, which verifies the file in
onnxruntime here (the engine itself is built and measured by `edgeresnet bench`).
"""

from .convert import export_tensorrt as export_tensorrt
from .convert import quantization_points as quantization_points
