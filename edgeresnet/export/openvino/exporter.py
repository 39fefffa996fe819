"""The openvino targets' Exporter: OpenVINO IRs, verified in OpenVINO's CPU runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...models.model import Model
from ..exporter import Check, Checked, Conversion
from ..sources import trained_for
from ..targets import Target
from ..verify import run_here
from .convert import export_openvino


class OpenVINOExporter:
    tools = ("openvino", "nncf")

    def reads_onnx(self, model: Model, target: Target) -> bool:
        # A model trained for OpenVINO int8 is converted from its PyTorch module, with its ranges.
        return not trained_for(model, target)

    def simulates(self, reference: Model) -> bool:
        """Our CPU simulator does; NNCF's quantized module (a QAT model) evaluates FakeQuantize formulas."""
        from ...quantization.openvino_cpu import CpuSimulator

        return isinstance(reference.module, CpuSimulator)

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        model = job.model
        for target in targets:
            with job.converting([target]):
                source = model.module if trained_for(model, target) else job.onnx
                assert source is not None  # reads_onnx: export wrote it
                export_openvino(
                    source,
                    job.paths[target],
                    target.precision,
                    calibration=job.normalized,
                    preprocess=model.preprocess if job.config.image_input else None,
                    labels=model.labels,
                    input_shape=model.input_shape,
                )

    def verify(self, check: Check) -> Checked:
        return run_here(check)

    def describe(self, target: Target, path: Path, checked: Checked) -> dict[str, Any] | None:
        return checked.validation
