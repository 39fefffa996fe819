"""The coreml runtime: PyTorch -> Core ML ML Program (.mlpackage), checked by its spec on Linux.

convert.py converts (fp16, int8 weights, W8A8); w8a8.py calibrates W8A8 quantization on
Linux; spec.py reads what a package declares and check.py holds it to what was asked for
(and runs it on macOS); exporter.py is the runtime's Exporter.
"""

from .check import validate_coreml as validate_coreml
from .convert import export_coreml as export_coreml
from .spec import inspect_coreml as inspect_coreml
from .w8a8 import quantize_w8a8 as quantize_w8a8
