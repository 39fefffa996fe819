"""The tflite runtime: ONNX -> .tflite (fp32, fp16, full-integer int8) through onnx2tf and TensorFlow.

convert.py starts worker.py in a child process (run as ``python -m
edgeresnet.export.tflite.worker``), which converts, writes the TFLite metadata
(metadata.py) and, for a model trained for TFLite int8, its learned ranges (ranges.py).
exporter.py is the runtime's Exporter.
"""

from .convert import export_tflite as export_tflite
