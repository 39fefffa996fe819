"""Runs in a child process: ONNX -> TensorFlow SavedModel (onnx2tf) -> .tflite.

Why a child process: onnx2tf prints to stdout, calls sys.exit() on errors, and
TensorFlow keeps global state; isolating it keeps the caller's stdout clean and turns
its failures into a message we can show. Why a working directory of our own: onnx2tf
loads the sample images it checks each layer with from the current directory and
downloads them from the internet when they are missing; we write the user's own
images there instead, so conversion needs no network.

Usage: python -m edgeresnet.export.tflite_worker JOB.json
JOB: {"onnx", "saved_model", "outputs": {precision: path}, "calibration", "samples", "io_dtype"}
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

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


def convert_to_tflite(saved_model: Path, precision: str, calibration: Path | None, io_dtype: str) -> bytes:
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    # Builtin ops only: a file that needs the Flex delegate does not drop into an app build.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        images = np.load(calibration)  # NHWC float32, normalised as the model expects

        def representative_dataset():
            for i in range(len(images)):
                yield [images[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        # Full integer: every op int8 (per-channel weights), or conversion fails loudly.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_dtype]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    return converter.convert()


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    saved_model = Path(job["saved_model"])
    if not (saved_model / "saved_model.pb").exists():
        convert_to_saved_model(Path(job["onnx"]), saved_model, Path(job["samples"]))
    calibration = Path(job["calibration"]) if job.get("calibration") else None
    for precision, output in job["outputs"].items():  # one TensorFlow start-up for all precisions
        data = convert_to_tflite(saved_model, precision, calibration, job.get("io_dtype", "int8"))
        Path(output).write_bytes(data)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.exit(main(sys.argv[1]))
