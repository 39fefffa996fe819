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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgeresnet.errors import ArchitectureError, CheckpointError
from edgeresnet.intake.layouts import Canonical, candidates
from edgeresnet.models.detect import ArchSpec, apply_state_dict, detect, mismatch, shapes_only, spec_of, spec_with_plan
from edgeresnet.preprocess import Preprocess

# Where training scripts commonly nest the weights; other entries (epoch, optimizer,
# best_prec1, ...) are ignored.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")  # "net": pytorch-cifar
# nn.DataParallel and torch.compile prefix every key of the module they wrap.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class Intake:
    """A model as it was read: the network, what it is, and what its source said about it."""

    module: nn.Module  # eval mode, float32
    spec: ArchSpec | None  # None: a module no layout describes, kept as its author wrote it
    layout: str  # the source layout (see intake.layouts), "edgeresnet" or "module"
    num_classes: int
    in_chans: int = 3
    labels: tuple[str, ...] | None = None  # from the source (Hugging Face id2label)
    preprocess: Preprocess | None = None  # from the source (Hugging Face preprocessor_config.json)
    input_shape: tuple[int, ...] | None = None  # the one shape a torch.export program takes

    @property
    def family(self) -> str:
        if self.spec is not None:
            return self.spec.family
        if self.input_shape is not None:
            return "cifar" if self.input_shape[-1] <= 64 else "imagenet"
        first = next((m for m in self.module.modules() if isinstance(m, nn.Conv2d)), None)
        return "cifar" if first is not None and first.kernel_size == (3, 3) and first.stride == (1, 1) else "imagenet"


def load(
    source: str | Path | nn.Module, arch: str | ArchSpec | None = None, *, trust_checkpoint: bool = False
) -> nn.Module:
    """The model in eval mode, float32; see ``read_model``."""
    return read_model(source, arch, trust_checkpoint=trust_checkpoint).module


def load_with_spec(
    source: str | Path | nn.Module, arch: str | ArchSpec | None = None, *, trust_checkpoint: bool = False
) -> tuple[nn.Module, ArchSpec | None]:
    """The model and its architecture (None for a module no layout describes)."""
    intake = read_model(source, arch, trust_checkpoint=trust_checkpoint)
    return intake.module, intake.spec


def read_model(
    source: str | Path | nn.Module, arch: str | ArchSpec | None = None, *, trust_checkpoint: bool = False
) -> Intake:
    """Read a ResNet from wherever the user has it.

    ``source`` is an nn.Module; a state-dict file (.pt/.pth/.th/.bin, bare or wrapped,
    with or without a ``module.`` prefix), a .safetensors file, a TorchScript archive or a
    ``torch.export`` .pt2 archive; or a folder written by Hugging Face's
    ``save_pretrained``. The layout (torchvision, timm, Hugging Face, pytorch-cifar, He et
    al.'s CIFAR) and the structure are read from the weights; ``arch`` (a zoo name such as
    ``"resnet56"`` or ``"resnet56:num_classes=100"``) replaces detection.
    """
    if isinstance(source, nn.Module):
        return _from_module(source, arch)
    path = Path(source)
    if path.is_dir():
        return _from_folder(path, arch, trust_checkpoint)
    if path.is_file() and _sniff(path) == "pt2":
        from edgeresnet.intake.pt2 import read_pt2

        return _from_module(read_pt2(path, trust_checkpoint), arch)
    loaded = _read(path, trust_checkpoint)
    if isinstance(loaded, nn.Module):
        return _from_module(loaded, arch)
    state_dict = _clean(loaded, path)
    if arch is None and (plan := _embedded_plan(path)):
        arch = spec_with_plan(plan)  # a pruned model saved by edgeresnet.save
    return _from_weights(state_dict, arch)


def _from_weights(
    state_dict: dict[str, Tensor], arch: str | ArchSpec | None, config: Mapping[str, Any] | None = None, **facts: Any
) -> Intake:
    if arch is not None:
        spec, canonical = _spec(arch, state_dict), Canonical("edgeresnet", state_dict)
    else:
        spec, canonical = _detect(state_dict, config)
    model = _empty(spec)
    try:
        apply_state_dict(model, canonical.state_dict, str(spec))
    except ArchitectureError as error:
        raise ArchitectureError(error.message, hint=_wrong_arch_hint(state_dict)) from None
    return Intake(model.eval(), spec, canonical.layout, spec.num_classes, _in_chans(spec), **facts)


def _build(spec: ArchSpec) -> nn.Module:
    if spec.plan is None:
        return spec.build()
    from edgeresnet.pruning.rebuild import rebuild

    return rebuild(spec.plan)


def _empty(spec: ArchSpec) -> nn.Module:
    """The architecture on the CPU with uninitialised weights, for a strict load to overwrite
    every one: running the initialisers on a ResNet-50's 25 M weights first costs a second.
    Buffers start at zero, the right value for the one kind a checkpoint may lack
    (num_batches_tracked)."""
    with shapes_only():
        module = _build(spec)
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for buffer in module.buffers():
            buffer.zero_()
    return module


def _detect(state_dict: Mapping[str, Tensor], config: Mapping[str, Any] | None = None) -> tuple[ArchSpec, Canonical]:
    """The first source layout whose renamed weights a zoo or general ResNet fits exactly."""
    first_error = None
    for canonical in candidates(state_dict, config):
        try:
            return detect(canonical.state_dict, **canonical.known), canonical
        except ArchitectureError as error:
            first_error = first_error or ArchitectureError(
                f"{error.message} (read as {canonical.layout} weights)", error.hint
            )
    assert first_error is not None  # candidates() always offers at least one layout
    raise first_error


def _in_chans(spec: ArchSpec) -> int:
    return spec.layout.in_chans if spec.layout is not None else 3


def _from_folder(path: Path, arch: str | ArchSpec | None, trust: bool) -> Intake:
    """A Hugging Face save_pretrained folder, or a folder edgeresnet saved a model into."""
    from edgeresnet.intake.huggingface import is_hub_folder, read_folder
    from edgeresnet.saving import WEIGHTS_NAME

    if is_hub_folder(path):
        hub = read_folder(path)
        state_dict = _clean(_read(hub.weights, trust), hub.weights)
        return _from_weights(state_dict, arch, hub.config, labels=hub.labels, preprocess=hub.preprocess)
    if (path / WEIGHTS_NAME).is_file():
        return read_model(path / WEIGHTS_NAME, arch, trust_checkpoint=trust)
    raise CheckpointError(
        f"{path} is a folder without a model in it: looked for config.json with model.safetensors or "
        f"pytorch_model.bin (Hugging Face save_pretrained) and {WEIGHTS_NAME} (edgeresnet save)",
        hint="pass the checkpoint file itself, or the folder save_pretrained() wrote",
    )


# How far a rebuilt network may differ from the caller's module on the same input.
_EQUIVALENT = dict(rtol=1e-4, atol=1e-5)


def _from_module(module: nn.Module, arch: str | ArchSpec | None) -> Intake:
    """A module object. One of ours is copied; one whose weights a layout describes is rebuilt as
    ours when it computes the same function (checked on an input), so that every stage knows its
    structure; anything else is kept as its author wrote it (copied, so theirs stays as it was)."""
    from edgeresnet.models.cifar import CifarResNet
    from edgeresnet.models.general import GeneralResNet
    from edgeresnet.models.resnet import ResNet

    hub_config = _hub_config(module)
    origin = type(module).__name__
    state_dict = _clean(module.state_dict(), origin)
    if arch is not None:
        spec = _spec(arch, state_dict)
        with shapes_only():
            problem = mismatch(_build(spec).state_dict(), state_dict)
        if problem:  # detect() checks the fit itself; a named arch has not been checked
            raise ArchitectureError(f"the module does not fit {spec}: {problem}", hint=_wrong_arch_hint(state_dict))
        return Intake(copy.deepcopy(module).float().eval(), spec, "edgeresnet", spec.num_classes, _in_chans(spec))
    own = isinstance(module, (ResNet, CifarResNet, GeneralResNet))
    try:
        intake = _from_weights(state_dict, None, hub_config, labels=_hub_labels(hub_config))
    except ArchitectureError:
        if own or hub_config is not None:
            raise
        return _opaque(module, origin)
    if own:
        return Intake(
            copy.deepcopy(module).float().eval(), intake.spec, "edgeresnet", intake.num_classes, intake.in_chans
        )
    if _same_function(module, intake, hub_config is not None):
        return intake
    if hub_config is not None:
        raise ArchitectureError(
            f"the {origin} computes something the ResNet rebuilt from its weights does not",
            "save it with save_pretrained() and report the folder as a bug",
        )
    return _opaque(module, origin)


def _hub_config(module: nn.Module) -> dict[str, Any] | None:
    config = getattr(module, "config", None)
    if config is None or getattr(config, "model_type", None) != "resnet" or not hasattr(config, "to_dict"):
        return None
    return config.to_dict()


def _hub_labels(config: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    if config is None:
        return None
    from edgeresnet.intake.huggingface import labels_of

    return labels_of(dict(config))


def _same_function(module: nn.Module, intake: Intake, hub: bool) -> bool:
    theirs = copy.deepcopy(module).float().eval()
    size = 32 if intake.family == "cifar" else 64
    shape = declared_input_shape(module) or (2, intake.in_chans, size, size)
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            expected = theirs(pixel_values=example).logits if hub else theirs(example)
        except Exception:  # noqa: BLE001 - a module that cannot take this input is not shown equal
            return False
        if not isinstance(expected, Tensor):
            return False
        return expected.shape == (shape[0], intake.num_classes) and torch.allclose(
            intake.module(example), expected, **_EQUIVALENT
        )


def declared_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """The input shape a graph module was traced with (a torch.export program's), if it says."""
    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    for node in graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" else None
        if isinstance(value, Tensor) and value.dim() == 4:
            try:
                return tuple(int(d) for d in value.shape)
            except TypeError:  # a dynamic dimension
                return None
    return None


def _opaque(module: nn.Module, origin: str) -> Intake:
    """A module no layout describes: it goes through every stage that needs no structure."""
    copied = copy.deepcopy(module).float().eval()
    # By the weights, not the layers: a torch.export program holds its convs as graph operations.
    shapes = [tuple(v.shape) for k, v in copied.state_dict().items() if k.endswith("weight")]
    convs, heads = [s for s in shapes if len(s) == 4], [s for s in shapes if len(s) == 2]
    if not convs or not heads:
        raise ArchitectureError(
            f"the {origin} is not a ResNet this tool knows: it has no conv stem and linear head",
            hint="pass a ResNet (torchvision, timm, Hugging Face, pytorch-cifar or your own nn.Module of convs)",
        )
    intake = Intake(copied, None, "module", heads[-1][0], convs[0][1], input_shape=declared_input_shape(module))
    if not _has_residual_addition(intake):
        raise ArchitectureError(
            f"the {origin} is not a ResNet: its traced graph has no residual addition",
            hint="edgeresnet takes ResNets (convs with identity or projection shortcuts)",
        )
    return intake


def _has_residual_addition(intake: Intake) -> bool:
    """Whether the module's graph adds two feature maps; a module fx cannot trace (data-dependent
    control flow) gets the benefit of the doubt: its export may still work."""
    import operator

    try:
        graph = torch.fx.symbolic_trace(intake.module).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "cannot tell"
        return True
    adds = {operator.add, operator.iadd, torch.add}
    return any(
        (
            node.op == "call_function"
            and node.target in adds
            or node.op == "call_method"
            and node.target in ("add", "add_")
        )
        and sum(isinstance(arg, torch.fx.Node) for arg in node.args) == 2
        for node in graph.nodes
    )


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


def _read(path: Path, trust: bool) -> Any:
    """The object stored in the file: a state dict, a wrapper dict, or (trusted) a module."""
    if not path.is_file():
        raise CheckpointError(
            f"model file not found: {path}" if not path.exists() else f"{path} is not a file",
            hint="check the path",
        )
    kind = _sniff(path)
    if kind == "pt2":
        raise CheckpointError(f"{path} is a torch.export archive", "load it with edgeresnet.load")
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "torchscript":
        return _read_torchscript(path)
    return _torch_load(path, trust)


def _sniff(path: Path) -> str:
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


def _clean(loaded: Any, origin: Path | str) -> dict[str, Tensor]:
    """A bare state dict: unwrapped, unprefixed, float32, finite."""
    state_dict = _unwrap(loaded, origin)
    for prefix in _WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    for key, tensor in state_dict.items():
        # A sum is finite exactly when every value is (weights do not add up to 3e38): one pass
        # without a mask, several times faster than isfinite().all() on a ResNet-50.
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum()):
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
