"""The openvino runtime: ONNX (or a model trained for OpenVINO int8) -> OpenVINO IR (.xml + .bin).

convert.py converts and quantizes (NNCF); exporter.py is the runtime's Exporter.
"""

from .convert import export_openvino as export_openvino
