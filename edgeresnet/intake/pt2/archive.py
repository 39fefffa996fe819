"""A torch.export archive as a zip: whether a file is one, its records, and the records that are
refused outright (compiled code, the legacy pickled layout, the other byte order)."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from edgeresnet.errors import CheckpointError, first_line

# torch/export/pt2_archive/constants.py (from torch/csrc/export/pt2_archive_constants.h)
_FORMAT_RECORD = "archive_format"
_FORMAT_VALUE = b"pt2"
_VERSION_RECORD = "archive_version"
_VERSION_VALUE = b"0"
_MODEL = "model"  # torch.export.save writes its program under this name
PROGRAM = f"models/{_MODEL}.json"
WEIGHTS_DIR = "data/weights/"
CONSTANTS_DIR = "data/constants/"
WEIGHTS_CONFIG = f"{WEIGHTS_DIR}{_MODEL}_weights_config.json"
CONSTANTS_CONFIG = f"{CONSTANTS_DIR}{_MODEL}_constants_config.json"
_AOTI_DIR = "data/aotinductor/"

TRUST_HINT = "if you trust the file, pass --trust-checkpoint to load it anyway"
DAMAGED_HINT = "save or download it again"


def is_pt2(path: Path) -> bool:
    """Whether ``path`` is a torch.export archive, by its records (not its name).

    ``torch.export.save`` writes ``<root>/archive_format`` (holding ``pt2``) beside
    ``<root>/models/`` and ``<root>/data/weights/``; ``torch.save`` writes
    ``<root>/data.pkl`` and ``torch.jit.save`` ``<root>/data.pkl`` with
    ``<root>/constants.pkl`` and ``<root>/code/``: neither has ``archive_format``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            root = _root(archive.namelist())
            if root is None or f"{root}/{_FORMAT_RECORD}" not in archive.namelist():
                return False
            return archive.read(f"{root}/{_FORMAT_RECORD}").strip() == _FORMAT_VALUE
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        return False


def _root(names: list[str]) -> str | None:
    """The folder every record of a torch zip lies in (torch names it after the file)."""
    if not names or "/" not in names[0]:
        return None
    root = names[0].split("/", 1)[0]
    return root if all(n.startswith(root + "/") for n in names) else None


def open_archive(path: Path) -> dict[str, str]:
    """Record name (without the root folder) -> its name in the zip, after checking that
    the file is a whole torch.export archive (every record passes its CRC)."""
    with path.open("rb") as file:
        head = file.read(4)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            damaged = archive.testzip()
            root = _root(names)
            records = {n[len(root) + 1 :]: n for n in names} if root else {}
            fmt = archive.read(records[_FORMAT_RECORD]).strip() if _FORMAT_RECORD in records else None
            version = archive.read(records[_VERSION_RECORD]).strip() if _VERSION_RECORD in records else None
    except zipfile.BadZipFile as error:
        if head == b"PK\x03\x04":  # a zip that lost its end: cut short or overwritten
            raise damaged_file(path, error) from None
        raise CheckpointError(
            f"{path} is not a torch.export archive (it is not a zip file)",
            hint="pass a .pt2 file written by torch.export.save",
        ) from None
    except (OSError, EOFError, zipfile.LargeZipFile, ValueError, KeyError) as error:
        raise damaged_file(path, error) from None
    if damaged is not None:
        raise damaged_file(path, f"record {damaged} fails its checksum")
    if fmt != _FORMAT_VALUE:
        raise CheckpointError(
            f"{path} is not a torch.export archive (it is {_zip_kind(names)}: no archive_format record saying pt2)",
            hint="pass a .pt2 file written by torch.export.save, or load a torch.save or "
            "TorchScript file as a checkpoint",
        )
    if version != _VERSION_VALUE:
        found = (
            "no archive_version record" if version is None else f"archive version {version.decode(errors='replace')!r}"
        )
        raise CheckpointError(
            f"cannot read {path}: the torch.export archive has {found}, and this reader knows version 0",
            hint="export and save the model again with torch.export.save",
        )
    return records


def _zip_kind(names: list[str]) -> str:
    if any(n.endswith("/constants.pkl") for n in names):
        return "a TorchScript archive"
    if any(n.endswith("/data.pkl") for n in names):
        return "a torch.save checkpoint"
    return "a zip archive"


def damaged_file(path: Path, error: Exception | str) -> CheckpointError:
    """The error for an archive whose bytes are not what torch wrote (cut short, overwritten)."""
    detail = error if isinstance(error, str) else (first_line(error) or type(error).__name__)
    return CheckpointError(f"cannot read {path}: the file is truncated or corrupt ({detail})", hint=DAMAGED_HINT)


def refuse_unsafe_records(path: Path, records: dict[str, str]) -> None:
    aoti = sorted(n for n in records if n.startswith(_AOTI_DIR))
    if aoti:
        raise CheckpointError(
            f"refused to load {path}: it holds AOTInductor compiled code ({aoti[0]}), which loading would run",
            hint=TRUST_HINT,
        )
    legacy = [n for n in (f"{WEIGHTS_DIR}{_MODEL}.pt", f"{CONSTANTS_DIR}{_MODEL}.pt") if n in records]
    if legacy:
        raise CheckpointError(
            f"refused to load {path}: it stores its tensors in the legacy pickled layout "
            f"({legacy[0]}), which torch.export.load unpickles in full",
            hint="export and save the model again with a current torch, or, if you trust the "
            "file, pass --trust-checkpoint to load it anyway",
        )
    order = records.get("byteorder")
    if order is not None:
        with zipfile.ZipFile(path) as archive:
            written = archive.read(order).strip().decode(errors="replace")
        if written not in ("", sys.byteorder):
            raise CheckpointError(
                f"cannot read {path}: its tensors are stored {written}-endian and this machine "
                f"is {sys.byteorder}-endian",
                hint="save it again on a little-endian machine",
            )


def read_json(path: Path, data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise damaged_file(path, f"{name}: {first_line(error)}") from None
