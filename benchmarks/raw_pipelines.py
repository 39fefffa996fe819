"""What a user writes by hand instead of edgeresnet: three int8 pipelines, vendor tools only.

Each pipeline is what the vendor's documentation shows, given the same 256 calibration
images edgeresnet's ptq-int8 uses (NHWC uint8 pixels in a .npy), and nothing else:
- onnx2tf: torch.onnx.export, onnxsim (onnx2tf's README asks for it; CIFAR shortcuts do not
  convert without it), then onnx2tf's full-integer quantization with the images as its
  custom calibration data (-oiqt -qt per-channel -cind). The file kept is
  `model_integer_quant.tflite`: int8 inside, float input and output, like tflite-int8.
  Offline, onnx2tf's own sample-image download must be pre-empted by a file of the images.
- openvino-nncf: openvino.convert_model of the PyTorch model, then nncf.quantize on the IR.
- onnxruntime: torch.onnx.export, then onnxruntime.quantization.quantize_static (QDQ,
  per-channel weights, MinMax calibration, after quant_pre_process).

Run one in a fresh process, so that its wall time and peak memory are its own:

    .venv/bin/python benchmarks/raw_pipelines.py PIPELINE MODEL.pt CALIBRATION.npy OUT_DIR

It writes OUT_DIR/result.json: the file it made, seconds, peak resident memory.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PIPELINES = ("onnx2tf", "openvino-nncf", "onnxruntime")


def normalized_nchw(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(((pixels.astype(np.float32) / 255 - MEAN) / STD).transpose(0, 3, 1, 2))


def torch_onnx(module, shape, path: Path) -> Path:
    import torch

    torch.onnx.export(module, torch.zeros(shape), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    return path


def onnx2tf_int8(module, pixels: np.ndarray, out: Path) -> Path:
    """In ``out``, which must be the working directory (where onnx2tf looks for its sample images)."""
    import onnx
    import onnx2tf
    import onnxsim

    onnx_path = torch_onnx(module, (1, 3, *pixels.shape[1:3]), out / "model.onnx")
    simplified, ok = onnxsim.simplify(onnx.load(str(onnx_path)))
    onnx.save(simplified, str(onnx_path))
    calibration = out / "calibration.npy"
    np.save(calibration, pixels.astype(np.float32) / 255)  # NHWC in [0, 1]; onnx2tf normalizes with -cind
    # onnx2tf downloads sample images to check its layers against, -cind or not; offline, the
    # workaround its users share is a file of one's own under the name it looks for.
    np.save(out / "calibration_image_sample_data_20x128x128x3_float32.npy", pixels[:20].astype(np.float32) / 255)
    onnx2tf.convert(
        input_onnx_file_path=str(onnx_path), output_folder_path=str(out / "saved_model"),
        output_integer_quantized_tflite=True, quant_type="per-channel", not_use_onnxsim=True,
        custom_input_op_name_np_data_path=[["input", str(calibration), MEAN.reshape(1, 1, 1, 3).tolist(),
                                            STD.reshape(1, 1, 1, 3).tolist()]],
        non_verbose=True,
    )
    return out / "saved_model" / "model_integer_quant.tflite"


def openvino_nncf(module, pixels: np.ndarray, out: Path) -> Path:
    import nncf
    import openvino as ov
    import torch

    images = normalized_nchw(pixels)
    model = ov.convert_model(module, example_input=torch.zeros(1, *images.shape[1:]), input=[(1, *images.shape[1:])])
    dataset = nncf.Dataset([images[i : i + 1] for i in range(len(images))])
    quantized = nncf.quantize(model, dataset, subset_size=len(images))
    ov.save_model(quantized, str(out / "model.xml"))
    return out / "model.xml"


def onnxruntime_static(module, pixels: np.ndarray, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = normalized_nchw(pixels)
    onnx_path = torch_onnx(module, (1, *images.shape[1:]), out / "float.onnx")
    prepared = out / "prepared.onnx"
    quant_pre_process(str(onnx_path), str(prepared))

    class Images(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": images[i : i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(prepared), str(out / "model.onnx"), Images(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out / "model.onnx"


STEPS = {"onnx2tf": onnx2tf_int8, "openvino-nncf": openvino_nncf, "onnxruntime": onnxruntime_static}


def main(pipeline: str, model_path: str, calibration: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # onnx2tf writes beside its working directory
    start = time.perf_counter()
    import edgeresnet  # loading the user's checkpoint into a module is not part of the pipeline's cost

    module = edgeresnet.load_model(model_path).module.eval()
    pixels = np.load(calibration)
    begin = time.perf_counter()
    made = STEPS[pipeline](module, pixels, out)
    seconds = time.perf_counter() - begin
    final = out / ("artifact" + made.suffix)
    shutil.copy(made, final)
    if made.suffix == ".xml":
        shutil.copy(made.with_suffix(".bin"), final.with_suffix(".bin"))
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    (out / "result.json").write_text(json.dumps({
        "pipeline": pipeline, "file": str(final), "seconds": round(seconds, 2),
        "seconds_with_imports": round(time.perf_counter() - start, 2), "peak_rss_mb": round(peak / 1024, 1),
    }))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in STEPS:
        sys.exit(__doc__)
    main(*sys.argv[1:])
