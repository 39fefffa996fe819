"""The coreml targets' Exporter: ML Program packages, checked by their spec where Core ML cannot run.

Core ML runs only on macOS. On Linux a package is held to what it must declare (inputs,
outputs, labels, weight and activation dtypes: check.py), and a W8A8 package's numbers are
checked through the fake-quantized PyTorch module it is converted from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...models.model import Model
from ..exporter import Check, Checked, Conversion
from ..sources import trained_for
from ..targets import Target
from ..verify import check_fidelity
from .check import validate_coreml
from .convert import export_coreml
from .w8a8 import quantize_w8a8


class CoreMLExporter:
    tools = ("coremltools",)

    def reads_onnx(self, model: Model, target: Target) -> bool:
        return False  # coremltools converts the traced PyTorch module

    def simulates(self, reference: Model) -> bool:
        return False  # coremltools' quantized modules evaluate FakeQuantize formulas, not Core ML's kernels

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        for target in targets:
            path = job.paths[target]
            with job.converting([target]):
                converted = job.model
                if target.precision == "w8a8" and not trained_for(job.model, target):
                    converted = quantize_w8a8(job.model, job.normalized)
                    # The package cannot run on Linux; the fake-quantized module it was converted
                    # from can, and must already pass the int8 bar.
                    job.simulated[target] = check_fidelity(
                        job.logits[target],
                        converted.predictor()(job.tensors),
                        target.precision,
                        name=f"{path.name} (simulated in PyTorch)",
                        minimum=job.config.min_agreement,
                    )
                export_coreml(converted, path, target.precision, image_input=job.config.image_input)

    def verify(self, check: Check) -> Checked:
        """The package's spec everywhere; its predictions against PyTorch's on macOS only."""
        reference = check.reference
        validation = validate_coreml(
            check.path,
            precision=check.target.precision,
            image_input=check.image_input,
            labels=reference.labels,
            input_size=reference.preprocess.input_size,
            model=reference,
            samples=check.samples,
            channels=reference.in_chans,
        )
        # The manifest's own fields say these; validation keeps the spec checks.
        inputs, outputs = validation.pop("input"), validation.pop("output")
        validation.pop("size_bytes", None)
        fidelity = validation.pop("fidelity", None)  # None on Linux: validation["runtime_check"] says why
        return Checked(inputs, outputs, fidelity, validation, None)

    def describe(self, target: Target, path: Path, checked: Checked) -> dict[str, Any] | None:
        return checked.validation
