"""Put ranges learned by quantization-aware training into an int8 TFLite file (runs in the worker).

The TFLite converter quantizes a float graph with activation ranges it measures itself
(calibration). We let it calibrate, then overwrite the ranges at every point the QAT
model quantized with the ones it learned, and let the converter's quantizer finish from
there: weights, biases and requantization scales all follow from those ranges, so the
int8 file computes what the QAT model simulated (the weights are on the int8 grid already).

Which tensor of the converted graph is which QAT point is decided by what flows through
it: the parent process sends, for a few images, each point's NHWC shape and per-channel
means, and the worker runs the same images through the calibrated float graph with every
tensor kept. Names and op order change from one converter version to the next; values do not.
"""

from __future__ import annotations

import numpy as np

# Ops whose output reuses its input's scale in int8 TFLite: the range carries over.
SAME_SCALE_OPS = {"PAD", "PADV2", "MIRROR_PAD", "STRIDED_SLICE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE"}
MATCH_TOLERANCE = 1e-4  # relative: a real match is ~1e-6 off (float rounding), a wrong one ~1e-1


class UnmatchedPoint(Exception):
    pass


def apply_ranges(calibrated: bytes, learned: dict, signatures: dict, images: np.ndarray) -> bytes:
    """The calibrated model with each QAT point's tensors set to its learned (min, max)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    means = _channel_means(calibrated, images)
    op_names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}

    def op_name(op) -> str | None:
        code = model.operatorCodes[op.opcodeIndex]
        return op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode))

    producers = {index: op_name(op) for op in graph.operators for index in op.outputs}
    assigned: dict[int, str] = {}
    for name, signature in signatures.items():
        tensors = _matching_tensors(means, signature, producers)
        if not tensors:
            raise UnmatchedPoint(f"no tensor of the converted graph carries the QAT point {name!r}")
        for index in tensors:
            if assigned.setdefault(index, name) != name:
                raise UnmatchedPoint(f"QAT points {assigned[index]!r} and {name!r} match the same tensor")
            _set_range(graph.tensors[index], *learned[name])
    for op in graph.operators:  # execution order: an input's range is final before its consumers
        if op_name(op) not in SAME_SCALE_OPS:
            continue
        source = graph.tensors[op.inputs[0]].quantization
        for index in op.outputs:
            if index not in assigned and source is not None and source.min is not None:
                _set_range(graph.tensors[index], float(source.min[0]), float(source.max[0]))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _channel_means(calibrated: bytes, images: np.ndarray) -> dict[int, tuple[int, np.ndarray]]:
    """Per float tensor of rank 2 or 4: (values per channel, an (images, channels) array of channel means)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    (model_input,) = interpreter.get_input_details()
    means: dict[int, list] = {}
    sizes: dict[int, int] = {}
    for image in images:
        interpreter.set_tensor(model_input["index"], image[None].astype(model_input["dtype"]))
        interpreter.invoke()
        for detail in interpreter.get_tensor_details():
            if detail["dtype"] != np.float32 or len(detail["shape"]) not in (2, 4) or detail["shape"][0] != 1:
                continue
            try:
                value = interpreter.get_tensor(detail["index"])
            except ValueError:  # a tensor without data (an unused constant)
                continue
            means.setdefault(detail["index"], []).append(value.reshape(-1, value.shape[-1]).mean(axis=0))
            sizes[detail["index"]] = value.size // value.shape[-1]
    return {index: (sizes[index], np.stack(rows)) for index, rows in means.items() if len(rows) == len(images)}


def _matching_tensors(
    means: dict[int, tuple[int, np.ndarray]], signature: dict, producers: dict[int, str | None]
) -> list[int]:
    """The tensors with the point's values per channel (a stage's last output and the pool
    after it share their channel means) and its channel means. A point that is a MEAN's
    output (``"op": "MEAN"``) is looked for among MEAN outputs only, and the others never
    there: over a 1x1 feature map a mean carries the very values of its input."""
    reference = np.asarray(signature["channel_means"], dtype=np.float64)
    size = int(np.prod(signature["shape"][1:-1]))
    scale = np.abs(reference).max() + 1e-6
    mean_output = signature.get("op") == "MEAN"
    found = []
    for index, (values, value) in means.items():
        if (producers.get(index) == "MEAN") != mean_output:
            continue
        if (
            values == size
            and value.shape == reference.shape
            and np.abs(value - reference).max() / scale < MATCH_TOLERANCE
        ):
            found.append(index)
    return found


def _set_range(tensor, low: float, high: float) -> None:
    if tensor.quantization is None:
        from tensorflow.lite.python import schema_py_generated as schema

        tensor.quantization = schema.QuantizationParametersT()
    tensor.quantization.min = np.array([low], dtype=np.float32)
    tensor.quantization.max = np.array([high], dtype=np.float32)
