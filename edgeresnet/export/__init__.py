"""Export a Model to deployable files, each verified against PyTorch and described by a manifest.

One function, `export`, behind which each runtime has its own module (onnx.py,
tflite.py, openvino.py, coreml.py + coreml_check.py). Every artifact lands in its own directory with a
manifest.json. Every file is run next to PyTorch where its runtime exists on this host;
a CoreML package on Linux is checked by its spec instead (Core ML runs only on macOS).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..manifest import Manifest, TensorSpec, artifact_sha256, file_hashes, tool_versions, write_manifest
from ..model import Model
from ..runner.runtimes import open_artifact
from .coreml import export_coreml
from .coreml_check import validate_coreml
from .onnx import OUTPUT_NAME, export_onnx
from .openvino import export_openvino
from .targets import TARGETS, Target, parse_targets
from .tflite import export_tflite
from .verify import check_fidelity

# The converters and runtimes behind each kind of artifact, recorded in its manifest.
TOOLS = {
    "onnx": ("onnxruntime",),
    "tflite": ("onnx2tf", "tensorflow", "ai-edge-litert"),
    "openvino": ("openvino", "nncf"),
    "coreml": ("coremltools",),
}

__all__ = ["Artifact", "ExportConfig", "TARGETS", "Target", "export", "parse_targets"]


class ExportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    io_dtype: Literal["int8", "uint8", "float32"] = "int8"  # input/output type of int8 TFLite files
    verify_samples: int = Field(default=512, ge=1)  # images on which each file is compared with PyTorch


@dataclass(frozen=True)
class Artifact:
    target: Target
    path: Path
    manifest: Manifest

    @property
    def directory(self) -> Path:
        return self.path.parent


def export(
    model: Model,
    targets: list[Target],
    out_dir: Path,
    *,
    samples: np.ndarray,
    calibration: np.ndarray | None = None,
    config: ExportConfig = ExportConfig(),
    threads: int | None = None,
) -> list[Artifact]:
    """Write one directory per target under `out_dir`.

    `samples` (NCHW float32, normalised) are the images each file is verified on against
    PyTorch; `calibration` sets int8 activation ranges.
    """
    work = out_dir / ".work"
    # Every converter but coremltools reads ONNX; a CoreML-only export needs none.
    if any(target.runtime != "coreml" for target in targets):
        onnx_path = export_onnx(model, work / "model.onnx")
    reference = model.predictor()(samples)
    source = model.describe()  # hashes every weight: once, not once per target
    paths = {}
    for target in targets:
        directory = out_dir / target.name
        directory.mkdir(parents=True, exist_ok=True)
        paths[target] = directory / f"{model.arch}-{target.name}{target.suffix}"
        if target.runtime == "onnx":
            shutil.copy(onnx_path, paths[target])
        elif target.runtime == "openvino":
            export_openvino(onnx_path, paths[target], target.precision, calibration=calibration)
        elif target.runtime == "coreml":
            export_coreml(model, paths[target], target.precision)  # from PyTorch: coremltools reads no ONNX
    tflite = {t.precision: paths[t] for t in targets if t.runtime == "tflite"}
    if tflite:
        export_tflite(onnx_path, tflite, workdir=work / "tflite", samples=samples,
                      calibration=calibration, io_dtype=config.io_dtype)

    artifacts = []
    for target, path in paths.items():
        directory = path.parent
        files = file_hashes(path)
        validation = None
        if target.runtime == "coreml":
            validation = validate_coreml(path, precision=target.precision, image_input=False, labels=model.labels,
                                         input_size=model.preprocess.input_size, model=model, samples=samples)
            # The manifest's own fields say these; validation keeps the spec checks.
            inputs = validation.pop("input")
            fidelity = validation.pop("fidelity", None)  # None on Linux: validation["runtime_check"] says why
            validation.pop("size_bytes", None)
            outputs = {"name": OUTPUT_NAME, "shape": [1, model.num_classes], "dtype": "float32"}
        else:
            runtime = open_artifact(path, threads)
            inputs, outputs = runtime.io_specs()
            fidelity = check_fidelity(reference, runtime(samples), target.precision, name=path.name)
        manifest = Manifest(
            target=target.name, runtime=target.runtime, precision=target.precision,
            file=path.name, sha256=artifact_sha256(path, files), files=files,
            size_bytes=sum((directory / name).stat().st_size for name in files),
            input=TensorSpec(**inputs), output=TensorSpec(**outputs),
            preprocessing=model.preprocess.model_dump(), labels=list(model.labels) if model.labels else None,
            source_model=source, fidelity=fidelity, validation=validation,
            tools=tool_versions("torch", "onnx", "onnxsim", *TOOLS[target.runtime]),
        )
        write_manifest(manifest, directory)
        artifacts.append(Artifact(target, path, manifest))
    shutil.rmtree(work, ignore_errors=True)
    return artifacts
