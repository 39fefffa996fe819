"""The public API's table: each name and the module that defines it, imported on first use
(PEP 562), so that `import edgeresnet` stays fast and the device-side runner
(edgeresnet.runner) works without torch installed."""

from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "load": "edgeresnet.loading",
    "load_model": "edgeresnet.loading",
    "save": "edgeresnet.saving",
    "prune": "edgeresnet.stages.prune",
    "PruneConfig": "edgeresnet.stages.prune",
    "ChannelPlan": "edgeresnet.models.plan",
    "sensitivity": "edgeresnet.pruning.sensitivity",
    "distill": "edgeresnet.stages.distill",
    "DistillConfig": "edgeresnet.stages.distill",
    "qat": "edgeresnet.stages.qat",
    "QatConfig": "edgeresnet.stages.qat",
    "Execution": "edgeresnet.training.config",
    "load_recipe": "edgeresnet.recipes",
    "Recipe": "edgeresnet.recipes",
    "SensitivityConfig": "edgeresnet.pruning.sensitivity",
    "Model": "edgeresnet.models.model",
    "Preprocess": "edgeresnet.preprocess",
    "open_dataset": "edgeresnet.data",
    "evaluate": "edgeresnet.evaluate",
    "calibrate": "edgeresnet.stages.ptq",
    "PtqConfig": "edgeresnet.stages.ptq",
    "ptq": "edgeresnet.stages.ptq",
    "export": "edgeresnet.export",
    "ExportConfig": "edgeresnet.export",
    "parse_targets": "edgeresnet.export",
    "compress": "edgeresnet.pipeline.api",
    "bench": "edgeresnet.runner.api",
    "BenchConfig": "edgeresnet.runner.bench",
    "report": "edgeresnet.reporting.api",
    "CompressOptions": "edgeresnet.pipeline.run",
    "inspect_model": "edgeresnet.inspection",
    "EdgeResNetError": "edgeresnet.errors",
    "models": "edgeresnet.models",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgeresnet' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    # A module exported as itself (edgeresnet.models), or the function of that name in it (prune).
    value = getattr(module, name, module)
    setattr(sys.modules["edgeresnet"], name, value)
    return value


def __dir__():
    return __all__


class _Package(types.ModuleType):
    """The edgeresnet package, whose public functions win over its submodules of the same name:
    importing edgeresnet.evaluate or edgeresnet.export.targets binds the submodule to the
    package's attribute, which must still read as the function (``edgeresnet.evaluate(...)``)."""

    def __getattribute__(self, name: str):
        value = super().__getattribute__(name)
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            return getattr(value, name, value)  # edgeresnet.models stays the module it exports
        return value


sys.modules["edgeresnet"].__class__ = _Package
