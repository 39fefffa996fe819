"""The tensorrt targets' Exporter: the ONNX an engine is built from, verified here in onnxruntime.

A TensorRT engine is specific to its GPU, so it is built on the device (runner/tensorrt.py);
what can be checked here is the file it is built from, on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...models.model import Model
from ..exporter import Check, Checked, Conversion
from ..targets import Target
from ..verify import run_here
from .convert import export_tensorrt, quantization_points


class TensorRTExporter:
    tools = ("onnxruntime",)  # its int8 file is quantized by onnxruntime; the engine is built on the device

    def reads_onnx(self, model: Model, target: Target) -> bool:
        return True

    def simulates(self, reference: Model) -> bool:
        return False  # no simulator of TensorRT's int8 kernels: checked against the float model

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        assert job.onnx is not None  # reads_onnx: export wrote it
        for target in targets:
            with job.converting([target]):
                export_tensorrt(
                    job.onnx, job.paths[target], target.precision, calibration=job.normalized, work=job.work
                )

    def verify(self, check: Check) -> Checked:
        # Run by onnxruntime on the CPU: the engine is built on the device.
        return run_here(check, runtime="onnx")

    def describe(self, target: Target, path: Path, checked: Checked) -> dict[str, Any] | None:
        """What was and was not checked of a TensorRT file here."""
        record: dict[str, Any] = {
            "verified_in": "onnxruntime (CPU): the TensorRT engine is built and measured on the device "
            "by `edgeresnet bench`",
            "engine_precision": target.precision,
        }
        if target.precision == "int8":
            record["qdq"] = quantization_points(path)
        return record
