"""The vendor steps that `compress --recipe ptq-int8` to every target wraps, done by hand.

What a user would run to get the same ten files without edgeresnet, each step timed:
torch.onnx.export and onnxsim (onnx); one onnx2tf run with full-integer quantization on the
calibration images (its fp32, fp16 and int8 .tflite files); openvino.convert_model saved in
fp32 and fp16, and nncf.quantize for int8; coremltools' convert in fp16, its weight
quantizer (int8w), and its PyTorch W8A8 quantizer calibrated and converted (w8a8). No
verification, no evaluation: that is what edgeresnet adds.

    .venv/bin/python benchmarks/raw_all_targets.py MODEL.pt CALIBRATION.npy OUT_DIR

Writes OUT_DIR/steps.json: seconds per step, and the process's wall time with its imports.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

STARTED = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from raw_pipelines import normalized_nchw, onnx2tf_int8, openvino_nncf  # noqa: E402


def main(model_path: str, calibration: str, out_dir: str) -> None:
    import torch

    import edgeresnet

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    module = edgeresnet.load_model(model_path).module.eval()
    pixels = np.load(calibration)
    images = normalized_nchw(pixels)
    example = torch.from_numpy(images[:1])
    steps: dict[str, float] = {}

    @contextmanager
    def step(name: str):
        begin = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - begin, 2)
        print(f"{name}: {steps[name]:.1f} s", file=sys.stderr, flush=True)

    with step("onnx2tf (onnx, tflite fp32/fp16/int8)"):
        onnx2tf_int8(module, pixels, out)  # out is the working directory: onnx2tf looks there for its samples
    (out / "openvino").mkdir(exist_ok=True)
    with step("openvino fp32 + fp16"):
        import openvino as ov

        model = ov.convert_model(module, example_input=example, input=[tuple(example.shape)])
        ov.save_model(model, str(out / "openvino" / "fp32.xml"), compress_to_fp16=False)
        ov.save_model(model, str(out / "openvino" / "fp16.xml"), compress_to_fp16=True)
    with step("openvino int8 (nncf.quantize)"):
        openvino_nncf(module, pixels, out / "openvino")
    with step("coreml fp16 + int8w"):
        import coremltools as ct
        import coremltools.optimize.coreml as cto

        traced = torch.jit.trace(module, example)
        package = ct.convert(traced, inputs=[ct.TensorType(name="input", shape=tuple(example.shape))],
                             convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                             minimum_deployment_target=ct.target.iOS16)
        package.save(str(out / "fp16.mlpackage"))
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
        cto.linear_quantize_weights(package, config=config).save(str(out / "int8w.mlpackage"))
    with step("coreml w8a8"):
        from coremltools.optimize.torch.quantization import (
            LinearQuantizer, LinearQuantizerConfig, ModuleLinearQuantizerConfig,
        )

        quantizer = LinearQuantizer(module, LinearQuantizerConfig(global_config=ModuleLinearQuantizerConfig(
            quantization_scheme="symmetric", weight_dtype="qint8", weight_per_channel=True,
            activation_dtype="quint8", milestones=[0, 1_000_000, 1_000_000, 0])))
        prepared = quantizer.prepare(example_inputs=(example,), inplace=True)  # the last step: module may change
        quantizer.step()
        prepared.eval()
        with torch.no_grad():
            for batch in torch.from_numpy(images).split(32):
                prepared(batch)
        finalized = quantizer.finalize(inplace=True).eval()
        traced = torch.jit.trace(finalized, example)
        ct.convert(traced, inputs=[ct.TensorType(name="input", shape=tuple(example.shape))],
                   convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17).save(str(out / "w8a8.mlpackage"))
    (out / "steps.json").write_text(json.dumps({
        "steps": steps, "steps_seconds": round(sum(steps.values()), 1),
        "process_seconds": round(time.perf_counter() - STARTED, 1)}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
