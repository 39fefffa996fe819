"""The onnx runtime: PyTorch -> ONNX, the intermediate every other converter but Core ML's reads.

convert.py writes (and simplifies) the graph; exporter.py is the onnx target's Exporter,
which ships that intermediate itself and verifies it in onnxruntime.
"""

from .convert import INPUT_NAME as INPUT_NAME
from .convert import OUTPUT_NAME as OUTPUT_NAME
from .convert import export_onnx as export_onnx
