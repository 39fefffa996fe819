"""``read_pt2``: a torch.export archive as an inference module, through torch's loader when the
file is trusted and through this package's checks otherwise."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from edgeresnet.errors import CheckpointError, first_line

from .archive import (
    CONSTANTS_CONFIG,
    CONSTANTS_DIR,
    DAMAGED_HINT,
    PROGRAM,
    WEIGHTS_CONFIG,
    WEIGHTS_DIR,
    open_archive,
    read_json,
    refuse_unsafe_records,
)
from .program import check_program, deserialize
from .tensors import payload_config, read_tensors, refuse_pickled_objects


def read_pt2(path: Path, trust: bool = False) -> nn.Module:
    """The program in a ``torch.export.save`` file as a module: eval mode, float32.

    The module's forward takes what the exported one took (for a ResNet, one NCHW float
    tensor). Without ``trust`` nothing in the file is unpickled except through
    ``torch.load(weights_only=True)``, and a file that needs more is refused with a
    ``CheckpointError``; with ``trust`` the file goes to ``torch.export.load``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"model file not found: {path}" if not path.exists() else f"{path} is not a file",
            hint="check the path",
        )
    names = open_archive(path)
    if trust:
        program = _load_trusted(path)
    else:
        program = _load_safely(path, names)
    return _as_inference_module(program, path, trusted=trust)


def _load_trusted(path: Path):
    try:
        return torch.export.load(path)
    except Exception as error:  # torch reports a bad archive as many exception types
        raise CheckpointError(
            f"cannot read {path}: torch.export.load failed ({first_line(error) or type(error).__name__})",
            hint=DAMAGED_HINT,
        ) from None


def _load_safely(path: Path, records: dict[str, str]):
    """An ExportedProgram built without unpickling anything but weights_only tensors."""
    refuse_unsafe_records(path, records)
    with zipfile.ZipFile(path) as archive:

        def read(name: str) -> bytes:
            if name not in records:
                raise CheckpointError(
                    f"cannot read {path}: the torch.export archive has no {name} record",
                    hint=DAMAGED_HINT,
                )
            return archive.read(records[name])

        doc = read_json(path, read(PROGRAM), PROGRAM)
        check_program(path, doc)
        weights_config = payload_config(path, read(WEIGHTS_CONFIG), WEIGHTS_CONFIG)
        constants_config = payload_config(path, read(CONSTANTS_CONFIG), CONSTANTS_CONFIG)
        refuse_pickled_objects(path, weights_config, constants_config)
        state_dict = read_tensors(path, weights_config, WEIGHTS_DIR, read, "weight")
        constants = read_tensors(path, constants_config, CONSTANTS_DIR, read, "constant")
    return deserialize(path, doc, state_dict, constants)


_TRAINING_FLAGS = {
    "aten::batch_norm": 5,
    "aten::dropout": 2,
    "aten::feature_dropout": 2,
    "aten::alpha_dropout": 2,
    "aten::feature_alpha_dropout": 2,
}


def _as_inference_module(exported, path: Path, trusted: bool) -> nn.Module:
    """``exported.module()`` in eval mode, float32.

    An exported module refuses ``eval()`` (its graph fixed the mode when it was traced), so
    the training flags of batch norm and dropout are cleared in the graph itself; a
    graph that trains in another way is refused.
    """
    try:
        # Trusted files keep their guards; ours never exec guard code from the file.
        module = exported.module() if trusted else exported.module(check_guards=False)
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"cannot read {path}: the exported program does not make a module "
            f"({first_line(error) or type(error).__name__})",
            hint="export and save the model again with this torch version",
        ) from None
    for sub in module.modules():
        changed = False
        graph = getattr(sub, "graph", None)
        for node in graph.nodes if graph is not None else ():
            target = node.target
            if not isinstance(target, torch._ops.OpOverload):
                continue
            name = target._schema.name
            if name in _TRAINING_FLAGS and len(node.args) > _TRAINING_FLAGS[name]:
                index = _TRAINING_FLAGS[name]
                if node.args[index] is True:
                    node.args = (*node.args[:index], False, *node.args[index + 1 :])
                    changed = True
            elif name in ("aten::_native_batch_norm_legit_functional", "aten::native_dropout") or (
                name in ("aten::_native_batch_norm_legit", "aten::native_batch_norm")
                and len(node.args) > 5
                and node.args[5] is True
            ):
                raise CheckpointError(
                    f"cannot use {path} for inference: its program was exported in training "
                    f"mode ({name} updates statistics or drops activations)",
                    hint="export the model after model.eval() and save it again",
                )
        if changed and isinstance(sub, torch.fx.GraphModule):
            sub.recompile()
    nn.Module.train(module, False)  # the flags; the module's own eval() raises
    return module.float()
