"""Which runtime opens which artifact."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeResNetError


def open_artifact(path: Path, threads: int | None = None, device: str = "CPU"):
    """The artifact loaded in its runtime: a runner.base.Runtime."""
    path = Path(path)
    if not path.is_file():
        raise EdgeResNetError(f"artifact not found: {path}", "check the path, or run `edgeresnet compress` first")
    if path.suffix == ".tflite":
        from .tflite import TFLiteModel
        return TFLiteModel(path, threads)
    if path.suffix == ".onnx":
        from .onnx import ONNXModel
        return ONNXModel(path, threads)
    if path.suffix == ".xml":
        from .openvino import OpenVINOModel
        return OpenVINOModel(path, threads, device)
    raise EdgeResNetError(f"no runtime for {path.name}", "the runner opens .tflite, .onnx and OpenVINO .xml files")
