"""Which runtime opens which artifact."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeResNetError
from ..manifest import MANIFEST_NAME, read_manifest


def open_artifact(path: Path, threads: int | None = None, device: str = "CPU", *, image_input: bool | None = None,
                  batch: int = 1):
    """The artifact loaded in its runtime: a runner.base.Runtime.

    Whether the file takes images or normalised tensors is what its manifest says
    (`image_input`); without a manifest beside it, it is taken to take tensors. A Core ML
    classifier's labels come from the manifest too.
    """
    path = Path(path)
    if not (path.is_file() or path.suffix == ".mlpackage" and path.is_dir()):
        raise EdgeResNetError(f"artifact not found: {path}", "check the path, or run `edgeresnet compress` first")
    manifest = _manifest_of(path)
    if path.suffix == ".tflite":
        from .tflite import TFLiteModel
        runtime = TFLiteModel(path, threads, batch)
    elif path.suffix == ".onnx":
        from .onnx import ONNXModel
        runtime = ONNXModel(path, threads, batch)
    elif path.suffix == ".xml":
        from .openvino import OpenVINOModel
        runtime = OpenVINOModel(path, threads, device, batch)
    elif path.suffix == ".mlpackage":
        from .coreml import CoreMLModel
        runtime = CoreMLModel(path, threads, batch, labels=manifest.labels if manifest else None)
    else:
        raise EdgeResNetError(f"no runtime for {path.name}",
                              "the runner opens .tflite, .onnx, OpenVINO .xml and (on macOS) .mlpackage files")
    runtime.image_input = bool(manifest and manifest.image_input) if image_input is None else image_input
    return runtime


def _manifest_of(path: Path):
    """The manifest export wrote beside `path`, if there is one and it describes this file."""
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return None
    manifest = read_manifest(manifest_path)
    return manifest if manifest.file == path.name else None
