"""Runs in a child process: ONNX -> TensorFlow SavedModel (onnx2tf) -> .tflite.

Why a child process: onnx2tf prints to stdout, calls sys.exit() on errors, and
TensorFlow keeps global state; isolating it keeps the caller's stdout clean and turns
its failures into a message we can show. Why a working directory of our own: onnx2tf
loads the sample images it checks each layer with from the current directory and
downloads them from the internet when they are missing; we write the user's own
images there instead, so conversion needs no network.

Usage: python -m edgeresnet.export.tflite.worker JOB.json
JOB: {"onnx", "saved_model", "outputs": {precision: path}, "samples", "calibration", "preprocess",
      "image_input", "io_dtypes": [input, output], "metadata"}
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from edgeresnet.data import channel_indices, normalize
from edgeresnet.export.tflite.metadata import add_metadata
from edgeresnet.preprocess import Preprocess

# onnx2tf's file name for the sample images it checks layers against (20 NHWC images in [0, 1]).
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def convert_to_saved_model(onnx_path: Path, saved_model: Path, samples: Path) -> None:
    import onnx2tf

    shutil.copy(samples, ONNX2TF_SAMPLE_FILE)
    work_copy = Path("model.onnx")  # onnx2tf may rewrite its input: give it a copy
    shutil.copy(onnx_path, work_copy)
    onnx2tf.convert(
        input_onnx_file_path=str(work_copy),
        output_folder_path=str(saved_model),
        not_use_onnxsim=True,  # already simplified in-process by export_onnx
        copy_onnx_input_output_names_to_tflite=True,
        output_signaturedefs=True,
        non_verbose=True,
    )


def convert_to_tflite(saved_model: Path, precision: str, job: dict) -> bytes:
    import tensorflow as tf

    if job["image_input"]:
        # int8 keeps a float input (0-255) for the converter to quantize to uint8 pixels;
        # the others cast a uint8 input inside the graph.
        classify, loaded = image_classifier(saved_model, job["preprocess"], float_input=precision == "int8")
        converter = tf.lite.TFLiteConverter.from_concrete_functions([classify], loaded)
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    # Builtin ops only: a file that needs the Flex delegate does not drop into an app build.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        images = calibration_inputs(job)

        def representative_dataset():
            for i in range(len(images)):
                yield [images[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        # Full integer: every op int8 (per-channel weights), or conversion fails loudly.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtypes = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
        converter.inference_input_type = dtypes[job["io_dtypes"][0]]
        converter.inference_output_type = dtypes[job["io_dtypes"][1]]
        data = quantize_with_learned_ranges(converter, job, dtypes) if job.get("qat") else converter.convert()
        check_int8_scales(data)
        return data
    return converter.convert()


# An int8 activation's scale is its calibrated range / 255: beyond this, the range held a
# sentinel (a -3.4e38 pad) rather than activations, and XNNPACK refuses the file.
MAX_ACTIVATION_SCALE = 1e6


def check_int8_scales(data: bytes) -> None:
    """Fail on an int8 file whose quantization scales no activation can have, naming the tensor."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    for tensor in model.subgraphs[0].tensors:
        scales = getattr(tensor.quantization, "scale", None)
        if scales is not None and len(scales) and not all(s < MAX_ACTIVATION_SCALE for s in scales):
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
            raise ValueError(
                f"the int8 tensor {name!r} got the scale {max(scales):.3g}: its calibrated range "
                "is not an activation's (a converter sentinel value); please report this with the model"
            )


def quantize_with_learned_ranges(converter, job: dict, dtypes: dict) -> bytes:
    """Calibrate as usual, replace the ranges at the QAT model's points with its own, then quantize."""
    import numpy as np
    from tensorflow.lite.python.convert import mlir_quantize

    from edgeresnet.export.tflite.ranges import apply_ranges

    qat = job["qat"]
    converter._experimental_calibrate_only = True  # the float graph with the calibrated ranges on its tensors
    calibrated = converter.convert()
    images = graph_inputs(np.load(qat["images"]), job)
    edited = apply_ranges(calibrated, qat["ranges"], qat["signatures"], images)
    return mlir_quantize(
        edited, input_data_type=dtypes[job["io_dtypes"][0]], output_data_type=dtypes[job["io_dtypes"][1]]
    )


def image_classifier(saved_model: Path, preprocess: dict, *, float_input: bool):
    """onnx2tf's graph with the preprocessing in front and a softmax behind: RGB pixels in,
    probabilities out. Returns the concrete function and the object that keeps its variables."""
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    infer = loaded.signatures["serving_default"]
    ((input_name, spec),) = infer.structured_input_signature[1].items()
    preprocessing = Preprocess(**preprocess)
    order = channel_indices(preprocessing)
    mean = np.asarray(preprocessing.mean, dtype=np.float32)[order]
    std = np.asarray(preprocessing.std, dtype=np.float32)[order]
    scale, bias = tf.constant(1.0 / (255.0 * std)), tf.constant(-mean / std)

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, tf.float32 if float_input else tf.uint8, name="image")])
    def classify(image):
        x = tf.cast(image, tf.float32)
        if order != [0, 1, 2]:
            x = tf.reverse(x, axis=[-1])
        ((_, logits),) = infer(**{input_name: x * scale + bias}).items()
        return {"probabilities": tf.nn.softmax(logits)}

    return classify.get_concrete_function(), loaded


def graph_inputs(pixels, job: dict):
    """uint8 NHWC RGB pixels as the graph being quantized takes them (NHWC float32)."""
    import numpy as np

    if not job["image_input"]:
        return np.ascontiguousarray(normalize(pixels, Preprocess(**job["preprocess"])).transpose(0, 2, 3, 1))
    return pixels.astype(np.float32)


def calibration_inputs(job: dict):
    """The calibration pixels as the graph being quantized takes them (NHWC float32)."""
    import numpy as np

    images = graph_inputs(np.load(job["calibration"]), job)
    if not job["image_input"]:
        return images
    # The converter maps the calibrated input range onto uint8: anchoring it at exactly 0
    # and 255 makes that map the identity (scale 1, zero point 0), so an app feeds its
    # pixels unchanged. Two pixels of one image, and only when no image reaches the ends.
    if images.min() > 0 or images.max() < 255:
        images[0, 0, 0, 0], images[0, 0, 1, 0] = 0.0, 255.0
    return images


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    saved_model = Path(job["saved_model"])
    if not (saved_model / "saved_model.pb").exists():
        convert_to_saved_model(Path(job["onnx"]), saved_model, Path(job["samples"]))
    for precision, output in job["outputs"].items():  # one TensorFlow start-up for all precisions
        data = convert_to_tflite(saved_model, precision, job)
        Path(output).write_bytes(add_metadata(data, **job["metadata"]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.exit(main(sys.argv[1]))
