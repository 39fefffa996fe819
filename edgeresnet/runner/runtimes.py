"""Which runtime opens which artifact."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeResNetError


def open_artifact(path: Path, threads: int | None = None):
    """A callable float NCHW -> float logits, with .invoke/.to_raw for timing."""
    path = Path(path)
    if not path.is_file():
        raise EdgeResNetError(f"artifact not found: {path}", "check the path, or run `edgeresnet compress` first")
    if path.suffix == ".tflite":
        from .tflite import TFLiteModel
        return TFLiteModel(path, threads)
    if path.suffix == ".onnx":
        from .onnx import ONNXModel
        return ONNXModel(path, threads)
    raise EdgeResNetError(f"no runtime for {path.name}", "the runner opens .tflite and .onnx files")
