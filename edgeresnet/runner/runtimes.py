"""Which runtime opens which artifact."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EdgeResNetError
from ..manifest import MANIFEST_NAME, read_manifest

if TYPE_CHECKING:
    from .base import Runtime

# A file without a manifest opens in the runtime its suffix names.
SUFFIX_RUNTIMES = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino", ".mlpackage": "coreml"}


def open_artifact(
    path: Path,
    threads: int | None = None,
    device: str = "CPU",
    *,
    image_input: bool | None = None,
    batch: int = 1,
    runtime: str | None = None,
):
    """The artifact loaded in its runtime: a runner.base.Runtime.

    The runtime is ``runtime`` when given ("onnx" runs a TensorRT file's ONNX in onnxruntime on
    the CPU, as export verifies it), else the manifest's, else the file's suffix's. Whether the
    file takes images or normalised tensors is what its manifest says (`image_input`); without
    a manifest beside it, it is taken to take tensors. A Core ML classifier's labels come from
    the manifest too.
    """
    path = Path(path)
    if not (path.is_file() or path.suffix == ".mlpackage" and path.is_dir()):
        raise EdgeResNetError(f"artifact not found: {path}", "check the path, or run `edgeresnet compress` first")
    manifest = _manifest_of(path)
    runtime = runtime or (manifest.runtime if manifest else SUFFIX_RUNTIMES.get(path.suffix))
    opened: Runtime
    if runtime == "tflite":
        from .tflite import TFLiteModel

        opened = TFLiteModel(path, threads, batch)
    elif runtime == "onnx":
        from .onnx import ONNXModel

        opened = ONNXModel(path, threads, batch)
    elif runtime == "tensorrt":
        from .tensorrt import open_tensorrt

        opened = open_tensorrt(path, manifest.precision if manifest else "fp16", threads, batch)
    elif runtime == "openvino":
        from .openvino import OpenVINOModel

        opened = OpenVINOModel(path, threads, device, batch)
    elif runtime == "coreml":
        from .coreml import CoreMLModel

        opened = CoreMLModel(path, threads, batch, labels=manifest.labels if manifest else None)
    else:
        raise EdgeResNetError(
            f"no runtime for {path.name}",
            "the runner opens .tflite, .onnx, OpenVINO .xml and (on macOS) .mlpackage files",
        )
    opened.image_input = bool(manifest and manifest.image_input) if image_input is None else image_input
    return opened


def _manifest_of(path: Path):
    """The manifest export wrote beside `path`, if there is one and it describes this file."""
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return None
    manifest = read_manifest(manifest_path)
    return manifest if manifest.file == path.name else None
