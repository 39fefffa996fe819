"""The onnx target's Exporter: the ONNX intermediate itself, verified in onnxruntime."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ...models.model import Model
from ..exporter import Check, Checked, Conversion
from ..targets import Target
from ..verify import run_here


class ONNXExporter:
    tools = ("onnxruntime",)

    def reads_onnx(self, model: Model, target: Target) -> bool:
        return True

    def simulates(self, reference: Model) -> bool:
        return False  # no int8 onnx target

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        assert job.onnx is not None  # reads_onnx: export wrote it
        for target in targets:
            with job.converting([target]):
                shutil.copy(job.onnx, job.paths[target])

    def verify(self, check: Check) -> Checked:
        return run_here(check)

    def describe(self, target: Target, path: Path, checked: Checked) -> dict[str, Any] | None:
        return checked.validation
