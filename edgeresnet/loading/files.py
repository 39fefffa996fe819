"""Checkpoint files: what a file holds, judged by its bytes, and reading it without running it.

A pickle is read with ``weights_only=True``: a checkpoint from the internet must not be able
to run code on this machine unless the user says they trust it. Damage (a failed CRC, a
truncated safetensors) is reported as such instead of loading wrong weights.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edgeresnet.errors import CheckpointError

# Files edgeresnet writes (or other exporters do) that users pass where a checkpoint goes.
EXPORTED_SUFFIXES = {
    ".tflite": "TFLite",
    ".onnx": "ONNX",
    ".xml": "OpenVINO IR",
    ".mlpackage": "Core ML",
    ".mlmodel": "Core ML",
    ".engine": "TensorRT engine",
    ".plan": "TensorRT engine",
}


def read_file(path: Path, trust: bool) -> Any:
    """The object stored in the file: a state dict, a wrapper dict, or (trusted) a module."""
    if not path.is_file():
        raise CheckpointError(
            f"model file not found: {path}" if not path.exists() else f"{path} is not a file",
            hint="check the path",
        )
    kind = sniff(path)
    if kind == "pt2":
        raise CheckpointError(f"{path} is a torch.export archive", "load it with edgeresnet.load")
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "torchscript":
        return _read_torchscript(path)
    return _torch_load(path, trust)


def sniff(path: Path) -> str:
    """What the file holds, judged by its bytes, not its name (a .bin may be anything)."""
    if path.suffix.lower() in EXPORTED_SUFFIXES:  # an exported file: no bytes decide what was meant
        raise CheckpointError(
            f"{path.name} is an exported {EXPORTED_SUFFIXES[path.suffix.lower()]} file, not a PyTorch checkpoint",
            f"pass the checkpoint it was exported from; `edgeresnet bench {path}` measures the file itself",
        )
    with path.open("rb") as file:
        head = file.read(16)
    if head.startswith(b"PK\x03\x04"):
        # torch.save and torch.jit.save both write zip archives; only TorchScript
        # stores constants.pkl beside the data.
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "torch"  # torch.load reports the damage in its own words
        if any(n.endswith("/constants.pkl") for n in names):
            return "torchscript"
        from edgeresnet.intake.pt2 import is_pt2

        return "pt2" if is_pt2(path) else "torch"
    if head[:1] == b"\x80":
        return "torch"  # a pickle: torch's legacy format
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"  # 8-byte header length, then a JSON header
    raise CheckpointError(
        f"{path} is not a model checkpoint (it looks like {_looks_like(head)})",
        hint="pass a .pt/.pth/.th/.bin state dict, a .safetensors file or a TorchScript archive",
    )


def _looks_like(head: bytes) -> str:
    if not head:
        return "an empty file"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "an unknown binary format"


def _torch_load(path: Path, trust: bool) -> Any:
    _check_zip_crc(path)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols just before it refuses a raw pickle;
            # our refusal says all the user needs.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as error:
        # weights_only refused something: a class, a function, or a pickle opcode
        # outside the tensors-and-containers subset. Loading it would execute it.
        if trust:
            raise CheckpointError(f"cannot unpickle {path}: {_first_line(error)}") from None
        raise CheckpointError(
            f"refused to load {path}: it holds {_refused_object(error)}, and unpickling it could run arbitrary code",
            hint="if you trust the file, pass --trust-checkpoint to load it anyway",
        ) from None
    except (ModuleNotFoundError, AttributeError) as error:
        # A pickled module needs the code of its class, which this process cannot import.
        where = f"the module {error.name!r}" if isinstance(error, ModuleNotFoundError) else _first_line(error)
        raise CheckpointError(
            f"cannot unpickle {path}: the model's class is not importable here ({where})",
            hint="put the code that defines it on PYTHONPATH, or save model.state_dict() or a torch.export .pt2 "
            "file instead",
        ) from None
    except Exception as error:  # torch.load reports damage as many types; all mean the file
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or corrupt ({_first_line(error)})",
            hint="save or download it again",
        ) from None


def _check_zip_crc(path: Path) -> None:
    """torch.load does not check the CRC32 that torch.save writes for every record, so a
    checkpoint with damaged tensor bytes loads with wrong weights, silently. Check it here."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        return  # not a zip (a legacy pickle), or a broken one: torch.load names the damage
    except (OSError, EOFError, zipfile.LargeZipFile, ValueError) as error:
        damaged = f"{type(error).__name__}: {error}"
    if damaged is not None:
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or corrupt (record {damaged} fails its checksum)",
            hint="save or download it again",
        )


def _refused_object(error: Exception) -> str:
    text = str(error)
    marker = "Unsupported global: GLOBAL "
    if marker in text:
        return "a pickled " + text.split(marker, 1)[1].split()[0]
    return "Python objects beyond plain tensors"


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot read {path}: the safetensors file is truncated or corrupt ({_first_line(error)})",
            hint="save or download it again",
        ) from None


def _read_torchscript(path: Path) -> dict[str, Tensor]:
    # A TorchScript archive holds code, but loading it only compiles that code; we take
    # the weights and never call it, so the result is our own module.
    try:
        return torch.jit.load(path, map_location="cpu").state_dict()
    except Exception as error:  # the TorchScript loader raises bare RuntimeErrors
        raise CheckpointError(
            f"cannot read TorchScript archive {path}: {_first_line(error)}",
            hint="save or download it again",
        ) from None


def _first_line(error: Exception) -> str:
    """The gist of a library's error: its first sentence; the rest is rarely for users."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0].split(". ")[0].rstrip(".")
