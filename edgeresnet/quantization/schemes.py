"""The qat schemes: one module of this package per runtime whose int8 arithmetic qat trains for.

The qat stage imports ``edgeresnet.quantization.<scheme>`` by name, and each of those modules
offers it the same three functions:

    prepare_for_training(net, calibration) -> module   fake quantization in, ranges from the images
    freeze_batch_norm(module)                          statistics stop moving (late in training)
    finish(module, like) -> (qat_module, float_module) the trained simulator, and plain float layers
"""

SCHEMES = ("tflite", "openvino", "coreml")
