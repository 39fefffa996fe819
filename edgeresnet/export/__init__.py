"""Export a Model to deployable files, each verified against PyTorch and described by a manifest.

One function, `export`, behind which each runtime has its own module (onnx.py,
tflite.py). Every artifact lands in its own directory with a manifest.json.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..manifest import Manifest, TensorSpec, sha256_file, tool_versions, write_manifest
from ..model import Model
from ..runner.runtimes import open_artifact
from .onnx import INPUT_NAME, OUTPUT_NAME, export_onnx
from .targets import TARGETS, Target, parse_targets
from .tflite import export_tflite
from .verify import check_fidelity

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
    onnx_path = export_onnx(model, work / "model.onnx")
    reference = model.predictor()(samples)
    paths = {}
    for target in targets:
        directory = out_dir / target.name
        directory.mkdir(parents=True, exist_ok=True)
        paths[target] = directory / f"{model.arch}-{target.name}{target.suffix}"
        if target.runtime == "onnx":
            shutil.copy(onnx_path, paths[target])
    tflite = {t.precision: paths[t] for t in targets if t.runtime == "tflite"}
    if tflite:
        export_tflite(onnx_path, tflite, workdir=work / "tflite", samples=samples,
                      calibration=calibration, io_dtype=config.io_dtype)

    artifacts = []
    for target, path in paths.items():
        directory = path.parent
        runtime = open_artifact(path, threads)
        fidelity = check_fidelity(reference, runtime(samples), target.precision, name=path.name)
        manifest = Manifest(
            target=target.name, runtime=target.runtime, precision=target.precision,
            file=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size,
            input=_tensor_spec(runtime, "input", model), output=_tensor_spec(runtime, "output", model),
            preprocessing=model.preprocess.model_dump(), labels=list(model.labels) if model.labels else None,
            source_model=model.describe(), fidelity=fidelity,
            tools=tool_versions("torch", "onnx", "onnxsim", "onnx2tf", "tensorflow", "ai-edge-litert", "onnxruntime"),
        )
        write_manifest(manifest, directory)
        artifacts.append(Artifact(target, path, manifest))
    shutil.rmtree(work, ignore_errors=True)
    return artifacts


def _tensor_spec(runtime, which: str, model: Model) -> TensorSpec:
    if hasattr(runtime, "interpreter"):  # TFLite: read what the file itself declares
        detail = runtime.input if which == "input" else runtime.output
        scale, zero_point = detail["quantization"]
        quantized = detail["dtype"] != np.float32
        return TensorSpec(
            name=detail["name"], shape=[int(d) for d in detail["shape"]], dtype=np.dtype(detail["dtype"]).name,
            layout=("NHWC" if runtime.nhwc else "NCHW") if which == "input" else None,
            scale=float(scale) if quantized else None, zero_point=int(zero_point) if quantized else None,
        )
    if which == "input":
        return TensorSpec(name=INPUT_NAME, shape=list(model.input_shape), dtype="float32", layout="NCHW")
    return TensorSpec(name=OUTPUT_NAME, shape=[1, model.num_classes], dtype="float32")
