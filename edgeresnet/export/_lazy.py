"""The names edgeresnet.export offers, each imported from its module on first use.

So that reading the target table (`edgeresnet targets`, a typo in --target) loads neither
torch nor a converter: the package's ``__getattr__`` (PEP 562) is this module's.
"""

from __future__ import annotations

import importlib
from typing import Any

_PACKAGE = __name__.rpartition(".")[0]
# name -> the module of edgeresnet.export that defines it
_EXPORTS = {
    "Artifact": "write",
    "export": "write",
    "LABELS_NAME": "write",
    "ExportConfig": "config",
    "grouped": "sources",
    "reference_model": "sources",
    "Exporter": "exporter",
    "EXPORTERS": "registry",
    "QAT_TARGETS": "targets",
    "TARGETS": "targets",
    "Target": "targets",
    "parse_targets": "targets",
}

# The package's __all__ (what `from edgeresnet.export import *` gives): names that __getattr__
# resolves, so that no static checker finds them defined here.
__all__ = ["Artifact", "ExportConfig", "TARGETS", "Target", "export", "parse_targets"]  # noqa: F822


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{_PACKAGE}.{_EXPORTS[name]}"), name)
