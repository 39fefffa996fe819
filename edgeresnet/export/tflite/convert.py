"""ONNX -> .tflite in fp32, fp16 or full-integer int8, through onnx2tf and the TFLite converter.

The conversion runs in a child process (see worker.py for why). The TensorFlow
SavedModel that onnx2tf writes is kept in the work directory and shared by every
precision of one export, so three TFLite targets cost one onnx2tf run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ...errors import ConversionError, first_line, require
from ...preprocess import Preprocess


def export_tflite(
    onnx_path: Path,
    outputs: dict[str, Path],
    *,
    workdir: Path,
    samples: np.ndarray,
    calibration: np.ndarray | None = None,
    preprocess: Preprocess,
    image_input: bool = False,
    io_dtypes: tuple[str, str] = ("int8", "int8"),
    description: dict,
    qat: dict | None = None,
) -> dict[str, Path]:
    """Convert `onnx_path` to one file per precision ("fp32", "fp16", "int8") in `outputs`.

    `samples` (a few normalised NCHW float32 images) replace the ones onnx2tf would
    download to check its layers; `calibration` (uint8 NHWC RGB pixels, int8 only) sets
    the activation ranges. `image_input` puts `preprocess` and a softmax into the file;
    `io_dtypes` are an int8 file's (input, output) types; `description` becomes its
    TFLite metadata (metadata.add_metadata's arguments). `qat` (a model trained
    for TFLite int8: {"ranges", "signatures", "images"}) replaces the int8 file's calibrated
    activation ranges with the learned ones (see ranges.py).
    """
    require(("tensorflow", "onnx2tf", "onnx"), "TFLite export", "tflite")
    workdir.mkdir(parents=True, exist_ok=True)
    samples_path = workdir / "onnx2tf_samples.npy"
    np.save(samples_path, _to_nhwc(samples[:20]))
    job = {
        "onnx": str(onnx_path.resolve()),
        "saved_model": str((workdir / "saved_model").resolve()),
        "outputs": {precision: str(path.resolve()) for precision, path in outputs.items()},
        "samples": str(samples_path.resolve()),
        "calibration": None,
        "preprocess": preprocess.model_dump(mode="json"),
        "image_input": image_input,
        "io_dtypes": list(io_dtypes),
        "metadata": description,
    }
    if "int8" in outputs:
        if calibration is None or len(calibration) == 0:
            raise ConversionError(
                "int8 export needs calibration images", "pass --data or --train-data with images, labelled or not"
            )
        calibration_path = workdir / "calibration.npy"
        np.save(calibration_path, calibration)
        job["calibration"] = str(calibration_path.resolve())
    if qat is not None and "int8" in outputs:
        images_path = workdir / "qat_images.npy"
        np.save(images_path, qat["images"])
        job["qat"] = {"ranges": qat["ranges"], "signatures": qat["signatures"], "images": str(images_path.resolve())}
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job, indent=2))

    log_path = workdir / "convert.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        result = subprocess.run(
            [sys.executable, "-m", "edgeresnet.export.tflite.worker", str(job_path.resolve())],  # cwd is workdir
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if result.returncode != 0 or not all(path.exists() for path in outputs.values()):
        raise ConversionError(f"TFLite conversion failed: {converter_reason(log_path.read_text())}")
    return outputs


def _to_nhwc(batch: np.ndarray) -> np.ndarray:
    # onnx2tf turns the NCHW graph into an NHWC one; its inputs follow.
    return np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype=np.float32)


def converter_reason(log: str) -> str:
    """The line of a converter log that says why it failed (onnx2tf names the layer there)."""
    lines = [text for text in map(first_line, log.splitlines()) if text]
    for marker in ("ERROR:", "Error:", "Exception:", "error:"):
        hits = [line for line in lines if marker in line]
        if hits:
            return " / ".join(dict.fromkeys(hits[-3:]))[:600]
    return lines[-1][:600] if lines else "the converter exited without a message"
