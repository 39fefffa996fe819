"""Turn whatever the user has (a module, a checkpoint file) into one of our ResNets.

Every file format ends as a plain state dict of float32 tensors, which is then loaded
strictly into a module built from the detected (or the asked-for) architecture. Pickles
are read with ``weights_only=True``: a checkpoint from the internet must not be able to
run code on this machine unless the user says they trust it.
"""

from __future__ import annotations

import copy
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError, CheckpointError
from edgeresnet.models.detect import ArchSpec, apply_state_dict, detect, mismatch, spec_of, spec_with_plan

# Where training scripts commonly nest the weights; other entries (epoch, optimizer,
# best_prec1, ...) are ignored.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# nn.DataParallel and torch.compile prefix every key of the module they wrap.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def load(
    source: str | Path | nn.Module, arch: str | ArchSpec | None = None, *, trust_checkpoint: bool = False
) -> nn.Module:
    """The model in eval mode, float32; see ``load_with_spec``."""
    return load_with_spec(source, arch, trust_checkpoint=trust_checkpoint)[0]


def load_with_spec(
    source: str | Path | nn.Module, arch: str | ArchSpec | None = None, *, trust_checkpoint: bool = False
) -> tuple[nn.Module, ArchSpec]:
    """The model and its architecture.

    ``source`` is an nn.Module (deep-copied), a state-dict file (.pt/.pth/.th/.bin, bare
    or wrapped, with or without a ``module.`` prefix), a .safetensors file or a
    TorchScript archive. ``arch`` (a zoo name such as ``"resnet56"`` or
    ``"resnet56:num_classes=100"``) replaces detection.
    """
    if isinstance(source, nn.Module):
        return _from_module(source, arch)
    loaded = _read(Path(source), trust_checkpoint)
    if isinstance(loaded, nn.Module):
        return _from_module(loaded, arch)
    state_dict = _clean(loaded, Path(source))
    if arch is None and (plan := _embedded_plan(Path(source))):
        arch = spec_with_plan(plan)  # a pruned model saved by edgeresnet.save
    spec = _spec(arch, state_dict)
    model = spec.build()
    try:
        apply_state_dict(model, state_dict, str(spec))
    except ArchitectureError as error:
        raise ArchitectureError(error.message, hint=_wrong_arch_hint(state_dict)) from None
    return model.eval(), spec


def _from_module(module: nn.Module, arch: str | ArchSpec | None) -> tuple[nn.Module, ArchSpec]:
    """The caller's own module (its class, its forward), copied so theirs stays as it was."""
    state_dict = _clean(module.state_dict(), type(module).__name__)
    spec = _spec(arch, state_dict)
    if arch is not None:  # detect() has checked the fit already; a named arch has not
        with torch.device("meta"):
            problem = mismatch(spec.build().state_dict(), state_dict)
        if problem:
            raise ArchitectureError(
                f"the module does not fit {spec}: {problem}", hint=_wrong_arch_hint(state_dict)
            )
    return copy.deepcopy(module).float().eval(), spec


def _embedded_plan(path: Path):
    """The channel plan in a .safetensors header, or beside the weights as channel-plan.json."""
    from edgeresnet.models.plan import METADATA_KEY, PLAN_NAME, ChannelPlan

    if _sniff(path) == "safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as file:
            text = (file.metadata() or {}).get(METADATA_KEY)
        if text:
            return ChannelPlan.from_json(text, f"the channel plan in {path}")
    beside = path.parent / PLAN_NAME
    return ChannelPlan.read(beside) if beside.is_file() else None


def _spec(arch: str | ArchSpec | None, state_dict: Mapping[str, Tensor]) -> ArchSpec:
    if arch is None:
        return detect(state_dict)
    return arch if isinstance(arch, ArchSpec) else spec_of(arch)


def _wrong_arch_hint(state_dict: Mapping[str, Tensor]) -> str:
    try:
        return f"the weights look like {detect(state_dict)}; omit --arch to use that"
    except ArchitectureError:
        return "check that --arch names the architecture the weights were trained as"


def _read(path: Path, trust: bool) -> Any:
    """The object stored in the file: a state dict, a wrapper dict, or (trusted) a module."""
    if not path.is_file():
        raise CheckpointError(
            f"model file not found: {path}" if not path.exists() else f"{path} is not a file",
            hint="check the path",
        )
    kind = _sniff(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "torchscript":
        return _read_torchscript(path)
    return _torch_load(path, trust)


def _sniff(path: Path) -> str:
    """What the file holds, judged by its bytes, not its name (a .bin may be anything)."""
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
        return "torchscript" if any(n.endswith("/constants.pkl") for n in names) else "torch"
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
            f"refused to load {path}: it holds {_refused_object(error)}, and unpickling it "
            "could run arbitrary code",
            hint="if you trust the file, pass --trust-checkpoint to load it anyway",
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
        raise CheckpointError(f"cannot read {path}: the file is truncated or corrupt (record {damaged} fails "
                              "its checksum)", hint="save or download it again")


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


def _clean(loaded: Any, origin: Path | str) -> dict[str, Tensor]:
    """A bare state dict: unwrapped, unprefixed, float32, finite."""
    state_dict = _unwrap(loaded, origin)
    for prefix in _WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"weight {key!r} in {origin} holds NaN or Inf values",
                hint="the checkpoint is damaged or training diverged; use an earlier checkpoint",
            )
    return state_dict


def _unwrap(loaded: Any, origin: Path | str) -> dict[str, Tensor]:
    if isinstance(loaded, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                return _unwrap(loaded[key], origin)
        tensors = {k: v for k, v in loaded.items() if isinstance(v, Tensor)}
        if tensors:
            return tensors
        found = f"a dict with keys {', '.join(map(repr, list(loaded)[:5]))}" if loaded else "an empty dict"
    else:
        found = f"a {type(loaded).__name__}"
    raise CheckpointError(
        f"{origin} holds {found}, not model weights",
        hint=f"save model.state_dict(), bare or under one of {', '.join(_WRAPPER_KEYS)}",
    )


def _first_line(error: Exception) -> str:
    """The gist of a library's error: its first sentence; the rest is rarely for users."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0].split(". ")[0].rstrip(".")
