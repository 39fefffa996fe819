"""The weights and constants of a torch.export archive, built from their raw bytes.

Nothing is unpickled but through ``torch.load(weights_only=True)``; constants that only a
full unpickle could rebuild (script objects, opaque Python objects) are refused first.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch import nn

from edgeresnet.errors import CheckpointError, first_line

from .archive import CONSTANTS_DIR, DAMAGED_HINT, TRUST_HINT, damaged_file, read_json
from .program import check_name

# How torch.export.save names constant records (torch/export/pt2_archive/constants.py).
_TENSOR_CONSTANT = "tensor_"
_CUSTOM_OBJ = "custom_obj_"
_OPAQUE_OBJ = "opaque_obj_"


def payload_config(path: Path, data: bytes, name: str):
    from torch._export.serde import schema
    from torch._export.serde.serialize import _dict_to_dataclass

    doc = read_json(path, data, name)
    try:
        config = _dict_to_dataclass(schema.PayloadConfig, doc)
        for key, meta in config.config.items():
            if not isinstance(meta.path_name, str) or not isinstance(meta.use_pickle, bool):
                raise ValueError(f"entry {key!r} has no path_name or use_pickle")
            check_name(path, key, f"{name} entry")
            check_name(path, meta.path_name, f"{name} entry")
        return config
    except CheckpointError:
        raise
    except Exception as error:  # a config that does not fit torch's schema
        raise damaged_file(path, f"{name}: {first_line(error) or type(error).__name__}") from None


def refuse_pickled_objects(path: Path, weights_config, constants_config) -> None:
    """Constants that only a full unpickle can rebuild: refused before any is read."""
    for fqn, meta in constants_config.config.items():
        name = meta.path_name
        if name.startswith(_CUSTOM_OBJ):
            found = f"constant {fqn!r} is a pickled torchbind script object ({CONSTANTS_DIR}{name})"
        elif name.startswith(_OPAQUE_OBJ):
            found = f"constant {fqn!r} is a pickled opaque Python object ({CONSTANTS_DIR}{name})"
        elif not name.startswith(_TENSOR_CONSTANT):
            found = f"constant {fqn!r} is stored as {CONSTANTS_DIR}{name}, which is no tensor record"
        else:
            continue
        raise CheckpointError(
            f"refused to load {path}: {found}, and unpickling it could run arbitrary code",
            hint=TRUST_HINT,
        )


def read_tensors(path: Path, config, directory: str, read, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights or constants config, built from their raw bytes.

    Entries that share a record share its storage, as torch's loader keeps them.
    Entries marked ``use_pickle`` (torch pickles tensor subclasses) are read with
    ``torch.load(weights_only=True)`` only, and refused when that is not enough.
    """
    from torch._export.serde.serialize import deserialize_scalar_type

    storages: dict[str, torch.UntypedStorage | None] = {}
    tensors: dict[str, torch.Tensor] = {}
    for fqn, meta in config.config.items():
        record = directory + meta.path_name
        if meta.use_pickle:
            tensors[fqn] = _pickled_tensor(path, read(record), fqn, record, what)
            continue
        tensor_meta = meta.tensor_meta
        try:
            if tensor_meta is None:
                raise ValueError("it has no tensor_meta")
            dtype = deserialize_scalar_type(tensor_meta.dtype)
            sizes = [_int(s, "size") for s in tensor_meta.sizes]
            strides = [_int(s, "stride") for s in tensor_meta.strides]
            offset = _int(tensor_meta.storage_offset, "storage offset")
            if record not in storages:
                data = bytearray(read(record))
                storages[record] = torch.frombuffer(data, dtype=torch.uint8).untyped_storage() if data else None
            storage = storages[record]
            if storage is None:  # torch writes an empty record for an empty tensor
                tensor = torch.zeros(sizes, dtype=dtype)
            else:
                tensor = torch.empty(0, dtype=dtype).set_(storage, offset, sizes, strides)
            if meta.is_param:
                tensor = nn.Parameter(
                    tensor, requires_grad=bool(tensor_meta.requires_grad) and tensor.is_floating_point()
                )
        except CheckpointError:
            raise
        except Exception as error:  # sizes beyond the bytes, an unknown dtype, symbolic sizes
            raise damaged_file(
                path, f"{what} {fqn!r} in {record}: {first_line(error) or type(error).__name__}"
            ) from None
        tensors[fqn] = tensor
    return tensors


def _int(value, what: str) -> int:
    if getattr(value, "type", None) != "as_int" or type(value.value) is not int:
        raise ValueError(f"its {what} is not a plain integer")
    return value.value


def _pickled_tensor(path: Path, data: bytes, fqn: str, record: str, what: str) -> torch.Tensor:
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refused a global or an opcode: what torch.export.load would unpickle
        # with weights_only=False, running whatever the pickle names.
        raise CheckpointError(
            f"refused to load {path}: {what} {fqn!r} is marked use_pickle and its record "
            f"{record} holds {_refused_object(error)}, and unpickling it could run arbitrary code",
            hint=TRUST_HINT,
        ) from None
    except Exception as error:  # not a pickle at all
        raise CheckpointError(
            f"refused to load {path}: {what} {fqn!r} is marked use_pickle but its record {record} "
            f"is no tensor pickle that a weights-only load can read ({first_line(error) or type(error).__name__})",
            hint=TRUST_HINT,
        ) from None
    if not isinstance(loaded, torch.Tensor):
        raise CheckpointError(
            f"refused to load {path}: {what} {fqn!r} is marked use_pickle and its record {record} "
            f"holds a {type(loaded).__name__}, not a tensor",
            hint=DAMAGED_HINT,
        )
    return loaded


def _refused_object(error: Exception) -> str:
    text = str(error)
    for marker in ("Unsupported global: GLOBAL ", "GLOBAL "):
        if marker in text:
            return "a pickled " + text.split(marker, 1)[1].split()[0].rstrip(".,:")
    return "Python objects beyond plain tensors"
