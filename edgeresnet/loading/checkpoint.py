"""Turn whatever the user has (a module, a checkpoint file, a folder) into one of our ResNets.

Every file format ends as a plain state dict of float32 tensors, which is then loaded
strictly into a module built from the detected (or the asked-for) architecture:
``files`` reads the file, ``state_dict`` cleans what it held, ``architecture`` builds the
network; a module object goes through ``module_objects``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeresnet.errors import CheckpointError
from edgeresnet.models.detect import spec_with_plan
from edgeresnet.models.spec import ArchSpec

from .architecture import Intake, from_weights
from .files import read_file, sniff
from .module_objects import from_module
from .state_dict import clean_state_dict


def load(
    source: str | Path | nn.Module, arch: str | ArchSpec | None = None, *, trust_checkpoint: bool = False
) -> nn.Module:
    """The model in eval mode, float32; see ``read_model``.

    Args:
        source: an nn.Module, a checkpoint file (.pt/.pth/.th/.bin, .safetensors, TorchScript,
            .pt2) or a folder (Hugging Face ``save_pretrained``, or one ``save`` wrote).
        arch: a zoo name such as "resnet56" or "resnet56:num_classes=100" instead of detecting
            the architecture from the weights.
        trust_checkpoint: allow reading a file that unpickles arbitrary objects (a whole
            pickled model); only for files from a trusted source.

    Returns the bare nn.Module; ``load_model`` returns it with its preprocessing and labels.

    Example::

        module = edgeresnet.load("pruned/model.safetensors")
        print(sum(p.numel() for p in module.parameters()))
    """
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
        return from_module(source, arch)
    path = Path(source)
    if path.is_dir():
        return _from_folder(path, arch, trust_checkpoint)
    if path.is_file() and sniff(path) == "pt2":
        from edgeresnet.intake.pt2 import read_pt2

        return from_module(read_pt2(path, trust_checkpoint), arch)
    loaded = read_file(path, trust_checkpoint)
    if isinstance(loaded, nn.Module):
        return from_module(loaded, arch)
    state_dict = clean_state_dict(loaded, path)
    if arch is None and (plan := _embedded_plan(path)):
        arch = spec_with_plan(plan)  # a pruned model saved by edgeresnet.save
    return from_weights(state_dict, arch)


def _from_folder(path: Path, arch: str | ArchSpec | None, trust: bool) -> Intake:
    """A Hugging Face save_pretrained folder, or a folder edgeresnet saved a model into."""
    from edgeresnet.intake.huggingface import is_hub_folder, read_folder
    from edgeresnet.saving import WEIGHTS_NAME

    if is_hub_folder(path):
        hub = read_folder(path)
        state_dict = clean_state_dict(read_file(hub.weights, trust), hub.weights)
        return from_weights(state_dict, arch, hub.config, labels=hub.labels, preprocess=hub.preprocess)
    if (path / WEIGHTS_NAME).is_file():
        return read_model(path / WEIGHTS_NAME, arch, trust_checkpoint=trust)
    raise CheckpointError(
        f"{path} is a folder without a model in it: looked for config.json with model.safetensors or "
        f"pytorch_model.bin (Hugging Face save_pretrained) and {WEIGHTS_NAME} (edgeresnet save)",
        hint="pass the checkpoint file itself, or the folder save_pretrained() wrote",
    )


def _embedded_plan(path: Path):
    """The channel plan in a .safetensors header, or beside the weights as channel-plan.json."""
    from edgeresnet.models.plan import METADATA_KEY, PLAN_NAME, ChannelPlan

    if sniff(path) == "safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as file:
            text = (file.metadata() or {}).get(METADATA_KEY)
        if text:
            return ChannelPlan.from_json(text, f"the channel plan in {path}")
    beside = path.parent / PLAN_NAME
    return ChannelPlan.read(beside) if beside.is_file() else None
