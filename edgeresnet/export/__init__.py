"""Export a Model to deployable files, each verified against PyTorch and described by a manifest.

`export` (write.py) sequences the converters, one module per runtime: onnx.py, tflite.py,
openvino.py, coreml.py (+ coreml_check.py), tensorrt.py; `targets.py` names what `--target`
accepts. Names are imported on first use, so that reading the target table (`edgeresnet
targets`, a typo in --target) loads neither torch nor a converter.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Artifact": "write",
    "ExportConfig": "write",
    "export": "write",
    "grouped": "write",
    "reference_model": "write",
    "LABELS_NAME": "write",
    "QAT_TARGETS": "write",
    "TOOLS": "write",
    "TARGETS": "targets",
    "Target": "targets",
    "parse_targets": "targets",
}

__all__ = ["Artifact", "ExportConfig", "TARGETS", "Target", "export", "parse_targets"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
