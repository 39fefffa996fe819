"""Save a model so that ``edgeresnet.load`` rebuilds it exactly, pruned or not.

One .safetensors file (no pickle: loading it cannot run code) whose header carries the
channel plan of a pruned model; the plan is also written beside it as JSON, for people
and for loading weights saved in another format.
"""

from __future__ import annotations

import os
from pathlib import Path

from .models.model import Model
from .models.plan import METADATA_KEY, PLAN_NAME
from .rundir import write_atomically

WEIGHTS_NAME = "model.safetensors"


def save(model: Model, directory: str | Path) -> Path:
    """Write ``directory``/model.safetensors (and channel-plan.json when pruned); returns the weights' path.

    Args:
        model: the Model to save; a pruned model's channel plan goes into the file's header.
        directory: where to write; it is created if missing, and a saved model in it replaced.

    Example::

        model = edgeresnet.load_model("resnet56.th")
        pruned = edgeresnet.prune(model, edgeresnet.PruneConfig(ratio=0.3, importance="l1"))
        weights = edgeresnet.save(pruned, "pruned/")
        again = edgeresnet.load_model(weights)
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"arch": model.arch}
    if model.plan is not None:
        metadata[METADATA_KEY] = model.plan.model_dump_json()
        write_atomically(directory / PLAN_NAME, model.plan.to_json().encode())
    weights = directory / WEIGHTS_NAME
    partial = weights.with_name(weights.name + ".partial")
    state = {k: v.detach().contiguous() for k, v in model.module.state_dict().items()}
    save_file(state, partial, metadata=metadata)
    os.replace(partial, weights)
    return weights
