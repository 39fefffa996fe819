"""Fake quantization that reproduces a runtime's integer arithmetic, for the qat stage.

tflite.py simulates TFLite's int8 kernels on every ResNet layout edgeresnet loads (deep
stems, average-pool shortcuts, squeeze-excitation, ECA, pre-activation; not modules no
layout describes) and hands the ranges it learned to the TFLite exporter; openvino.py and
coreml.py wrap the vendors' own QAT tools (NNCF, coremltools.optimize.torch), whose
quantizers their converters read.

Each scheme module offers the qat stage the same three functions:

    prepare_for_training(net, calibration) -> module   fake quantization in, ranges from the images
    freeze_batch_norm(module)                          statistics stop moving (late in training)
    finish(module, like) -> (qat_module, float_module) the trained simulator, and plain float layers
"""

SCHEMES = ("tflite", "openvino", "coreml")
