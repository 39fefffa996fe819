"""Fake quantization that reproduces a runtime's integer arithmetic, for the qat stage.

tflite.py simulates TFLite's int8 kernels on every ResNet layout edgeresnet loads (deep
stems, average-pool shortcuts, squeeze-excitation, ECA, pre-activation; not modules no
layout describes) and hands the ranges it learned to the TFLite exporter; openvino.py and
coreml.py wrap the vendors' own QAT tools (NNCF, coremltools.optimize.torch), whose
quantizers their converters read. schemes.py names them and the three functions each
offers the qat stage.
"""

from .schemes import SCHEMES as SCHEMES
