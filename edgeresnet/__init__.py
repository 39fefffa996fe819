"""edgeresnet: a trained PyTorch ResNet in, measured and verified edge artifacts out.

The public API. Names are imported on first use, so `import edgeresnet` stays fast and
the device-side runner (edgeresnet.runner) works without torch installed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load": "edgeresnet.loading",
    "load_model": "edgeresnet.stages.load",
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
    "Model": "edgeresnet.model",
    "Preprocess": "edgeresnet.preprocess",
    "open_dataset": "edgeresnet.data",
    "evaluate": "edgeresnet.evaluate",
    "calibrate": "edgeresnet.stages.ptq",
    "PtqConfig": "edgeresnet.stages.ptq",
    "ptq": "edgeresnet.stages.ptq",
    "export": "edgeresnet.export",
    "ExportConfig": "edgeresnet.export",
    "parse_targets": "edgeresnet.export",
    "compress": "edgeresnet.pipeline",
    "CompressOptions": "edgeresnet.pipeline",
    "inspect_model": "edgeresnet.inspection",
    "EdgeResNetError": "edgeresnet.errors",
    "models": "edgeresnet.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgeresnet' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    # A module exported as itself (edgeresnet.models), or the function of that name in it (prune).
    value = getattr(module, name, module)
    globals()[name] = value
    return value


def __dir__():
    return __all__
