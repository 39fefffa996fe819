"""Which runtime opens which artifact."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeResNetError
from ..manifest import MANIFEST_NAME, read_manifest


def open_artifact(path: Path, threads: int | None = None, device: str = "CPU", *, image_input: bool | None = None):
    """The artifact loaded in its runtime: a runner.base.Runtime.

    Whether the file takes images or normalised tensors is what its manifest says
    (`image_input`); without a manifest beside it, it is taken to take tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgeResNetError(f"artifact not found: {path}", "check the path, or run `edgeresnet compress` first")
    if path.suffix == ".tflite":
        from .tflite import TFLiteModel
        runtime = TFLiteModel(path, threads)
    elif path.suffix == ".onnx":
        from .onnx import ONNXModel
        runtime = ONNXModel(path, threads)
    elif path.suffix == ".xml":
        from .openvino import OpenVINOModel
        runtime = OpenVINOModel(path, threads, device)
    else:
        raise EdgeResNetError(f"no runtime for {path.name}", "the runner opens .tflite, .onnx and OpenVINO .xml files")
    runtime.image_input = _declared_image_input(path) if image_input is None else image_input
    return runtime


def _declared_image_input(path: Path) -> bool:
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    manifest = read_manifest(manifest_path)
    return manifest.image_input and manifest.file == path.name
