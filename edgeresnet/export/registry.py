"""EXPORTERS: which Exporter writes each runtime's files; the one place a runtime is plugged in.

A runtime is its folder under export/ (an Exporter and the converter code it wraps) and one
``EXPORTERS.register`` line: below for the builtin runtimes (whose targets targets.TARGETS
lists), or with ``targets=`` for a runtime plugged in from elsewhere, which adds its targets
to what --target accepts. An entry may name
its class as ``"module:Class"``, imported (and instantiated) on first use, so that reading
the targets (``edgeresnet targets``, a typo in --target) loads no converter and no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import TargetError
from .targets import TARGETS, Target

if TYPE_CHECKING:
    from .exporter import Exporter


class ExporterRegistry:
    """Runtime name (``Target.runtime``) -> its Exporter; a name is registered once."""

    def __init__(self) -> None:
        self._entries: dict[str, Exporter | str] = {}
        self._targets: dict[str, list[str]] = {}  # the targets each plugged-in runtime added

    def register(self, runtime: str, exporter: Exporter | str, targets: Iterable[Target] = ()) -> None:
        """Add ``exporter`` (an Exporter, or ``"module:Class"`` to import on first use) for
        ``runtime``, and ``targets`` (of that runtime) to TARGETS, which --target reads."""
        if runtime in self._entries:
            raise ValueError(
                f"an exporter for runtime {runtime!r} is registered already ({self._entries[runtime]!r}): "
                "give the new one another runtime name, or unregister the old one first"
            )
        added = list(targets)
        for target in added:
            if target.runtime != runtime or target.name in TARGETS:
                raise ValueError(
                    f"target {target.name!r} cannot be added for runtime {runtime!r}: "
                    + ("the name is taken" if target.name in TARGETS else f"it is a {target.runtime!r} target")
                )
        self._entries[runtime] = exporter
        TARGETS.update((target.name, target) for target in added)
        self._targets[runtime] = [target.name for target in added]

    def unregister(self, runtime: str) -> None:
        if runtime not in self._entries:
            raise KeyError(f"no exporter is registered for runtime {runtime!r}")
        del self._entries[runtime]
        for name in self._targets.pop(runtime, []):
            del TARGETS[name]

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
