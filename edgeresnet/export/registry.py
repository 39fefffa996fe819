"""EXPORTERS: which Exporter writes each runtime's files; the one place a runtime is plugged in.

A runtime is its folder under export/ (an Exporter and the converter code it wraps), its
targets in targets.TARGETS, and one ``EXPORTERS.register`` line below. An entry may name
its class as ``"module:Class"``, imported (and instantiated) on first use, so that reading
the targets (``edgeresnet targets``, a typo in --target) loads no converter and no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import TargetError

if TYPE_CHECKING:
    from .exporter import Exporter


class ExporterRegistry:
    """Runtime name (``Target.runtime``) -> its Exporter; a name is registered once."""

    def __init__(self) -> None:
        self._entries: dict[str, Exporter | str] = {}

    def register(self, runtime: str, exporter: Exporter | str) -> None:
        """Add ``exporter`` (an Exporter, or ``"module:Class"`` to import on first use) for ``runtime``."""
        if runtime in self._entries:
            raise ValueError(
                f"an exporter for runtime {runtime!r} is registered already ({self._entries[runtime]!r}): "
                "give the new one another runtime name, or unregister the old one first"
            )
        self._entries[runtime] = exporter

    def unregister(self, runtime: str) -> None:
        if runtime not in self._entries:
            raise KeyError(f"no exporter is registered for runtime {runtime!r}")
        del self._entries[runtime]

    def __contains__(self, runtime: object) -> bool:
        return runtime in self._entries

    def runtimes(self) -> list[str]:
        return list(self._entries)

    def __getitem__(self, runtime: str) -> Exporter:
        entry = self._entries.get(runtime)
        if entry is None:
            raise TargetError(
                f"no exporter writes {runtime!r} files",
                f"register one in edgeresnet.export.registry.EXPORTERS (known: {', '.join(self._entries)})",
            )
        if not isinstance(entry, str):
            return entry
        module, _, name = entry.partition(":")
        exporter: Exporter = getattr(importlib.import_module(module), name)()
        self._entries[runtime] = exporter
        return exporter


EXPORTERS = ExporterRegistry()
EXPORTERS.register("onnx", "edgeresnet.export.onnx.exporter:ONNXExporter")
EXPORTERS.register("tflite", "edgeresnet.export.tflite.exporter:TFLiteExporter")
EXPORTERS.register("openvino", "edgeresnet.export.openvino.exporter:OpenVINOExporter")
EXPORTERS.register("coreml", "edgeresnet.export.coreml.exporter:CoreMLExporter")
EXPORTERS.register("tensorrt", "edgeresnet.export.tensorrt.exporter:TensorRTExporter")
