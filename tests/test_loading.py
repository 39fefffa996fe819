"""load(): every checkpoint format, and every way a checkpoint can be wrong."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from edgeresnet.errors import ArchitectureError, CheckpointError
from edgeresnet.loading import load, load_with_spec
from edgeresnet.models import create
from edgeresnet.models.cifar import CifarResNet
from edgeresnet.models.detect import spec_of

CIFAR_CHECKPOINTS = {
    "resnet20-12fca82f.th": "resnet20",
    "resnet56-4bfd9763.th": "resnet56",
    "resnet20_cifar10jpeg.pt": "resnet20",
    "resnet56_cifar10jpeg.pt": "resnet56",
}


@pytest.fixture
def resnet8() -> nn.Module:
    torch.manual_seed(0)
    return create("resnet8").eval()


def same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-5)


# --- real checkpoints ----------------------------------------------------------------------


@pytest.mark.parametrize("file, name", CIFAR_CHECKPOINTS.items())
def test_cifar_checkpoints_load_and_are_detected(shared, file, name):
    model, spec = load_with_spec(shared / "models" / "cifar" / file)
    assert (spec.name, spec.shortcut, spec.num_classes, spec.options) == (name, "A", 10, {})
    assert isinstance(model, CifarResNet) and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        logits = model(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()


def test_idelbayev_weights_arrive_unchanged(shared):
    path = shared / "models" / "cifar" / "resnet20-12fca82f.th"
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model = load(path)
    torch.testing.assert_close(model.layer3[2].conv2.weight, raw["module.layer3.2.conv2.weight"])
    torch.testing.assert_close(model.linear.bias, raw["module.linear.bias"])


def test_float16_torchvision_checkpoint_reproduces_logits(shared):
    folder = shared / "models" / "torchvision"
    model, spec = load_with_spec(folder / "resnet18_seed0_fp16.pt")
    assert spec.name == "resnet18" and model.fc.weight.dtype == torch.float32
    with torch.no_grad():
        logits = model(torch.load(folder / "resnet18_input.pt", weights_only=True))
    expected = torch.load(folder / "resnet18_logits.pt", weights_only=True)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


# --- formats and wrappers ------------------------------------------------------------------


def test_module_source_is_deep_copied(resnet8):
    resnet8.train()
    model, spec = load_with_spec(resnet8)
    assert spec.name == "resnet8"
    assert model is not resnet8 and not model.training and resnet8.training
    with torch.no_grad():
        model.linear.bias.add_(1)
    assert not torch.equal(model.linear.bias, resnet8.linear.bias)


def test_module_source_is_checked(resnet8):
    with pytest.raises(ArchitectureError, match="does not fit resnet20"):
        load(resnet8, "resnet20")
    with pytest.raises(ArchitectureError, match="not a ResNet"):
        load(nn.Sequential(nn.Linear(4, 4)))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "best_prec1": 91.2, "epoch": 180},
        lambda sd: {"model": sd, "optimizer": {"state": {}, "param_groups": []}},
        lambda sd: {"model_state_dict": sd, "epoch": 3, "loss": 0.25},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
    ],
    ids=["bare", "state_dict", "model", "model_state_dict", "dataparallel", "compiled"],
)
def test_wrapped_and_prefixed_state_dicts(resnet8, tmp_path, wrap):
    path = tmp_path / "weights.pth"
    torch.save(wrap(resnet8.state_dict()), path)
    model, spec = load_with_spec(path)
    assert spec.name == "resnet8" and same_outputs(model, resnet8)


def test_half_precision_weights_become_float32(resnet8, tmp_path):
    half = {k: v.half() if v.is_floating_point() else v for k, v in resnet8.state_dict().items()}
    path = tmp_path / "weights.pt"
    torch.save(half, path)
    loaded = load(path).state_dict()
    assert loaded["conv1.weight"].dtype == torch.float32
    assert loaded["bn1.num_batches_tracked"].dtype == torch.int64
    rounded = {k: v.float() if v.is_floating_point() else v for k, v in half.items()}
    torch.testing.assert_close(loaded, rounded)


def test_format_is_read_from_the_bytes_not_the_name(resnet8, tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save(resnet8.state_dict(), path)
    assert same_outputs(load(path), resnet8)
    legacy = tmp_path / "old.th"
    torch.save(resnet8.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert same_outputs(load(legacy), resnet8)


def test_safetensors_round_trip(resnet8, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file(resnet8.state_dict(), path)
    model, spec = load_with_spec(path)
    assert spec.name == "resnet8" and same_outputs(model, resnet8)


@pytest.mark.parametrize(
    "compile",
    [torch.jit.script, lambda m: torch.jit.trace(m, torch.randn(1, 3, 32, 32))],
    ids=["script", "trace"],
)
def test_torchscript_round_trip_gives_our_module(resnet8, tmp_path, compile):
    path = tmp_path / "scripted.pt"
    torch.jit.save(compile(resnet8), path)
    model, spec = load_with_spec(path)
    assert type(model) is CifarResNet and spec.name == "resnet8"
    assert same_outputs(model, resnet8)


# --- arch ----------------------------------------------------------------------------------


def test_arch_overrides_detection(resnet8, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(create("resnet8", num_classes=5, shortcut="B").state_dict(), path)
    spec = spec_of("resnet8:shortcut=B,num_classes=5")
    assert load_with_spec(path, "resnet8:num_classes=5,shortcut=B")[1] == spec
    assert load_with_spec(path, spec)[1] == spec


def test_wrong_arch_names_mismatched_keys(shared):
    path = shared / "models" / "cifar" / "resnet20-12fca82f.th"
    with pytest.raises(ArchitectureError) as error:
        load(path, arch="resnet56")
    message = str(error.value)
    assert "missing keys (layer1.3.conv1.weight" in message
    assert "the weights look like resnet20" in message
    with pytest.raises(ArchitectureError, match="mis-shaped key.*linear.weight"):
        load(path, arch="resnet20:num_classes=100")
    with pytest.raises(ArchitectureError, match="did you mean .*'resnet20'"):
        load(path, arch="resnet2O")


def test_non_resnet_state_dict(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).state_dict(), path)
    with pytest.raises(ArchitectureError, match="not a ResNet this tool knows.*torch.export"):
        load(path)


# --- bad files -----------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*nothing.pt"):
        load(tmp_path / "nothing.pt")
    # A folder may be a Hugging Face save_pretrained folder: say what was looked for.
    with pytest.raises(CheckpointError, match="folder without a model in it: looked for config.json"):
        load(tmp_path)


@pytest.mark.parametrize(
    "content, kind",
    [
        (b"epoch 3, loss 0.25\n", "a text file"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), "a JPEG image"),
        (b"", "an empty file"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, kind):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"not a model checkpoint \\(it looks like {kind}\\)"):
        load(path)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint(resnet8, tmp_path, legacy):
    path = tmp_path / "model.pt"
    torch.save(resnet8.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        load(path)
    assert "\n" not in str(error.value)


def test_truncated_safetensors(resnet8, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file(resnet8.state_dict(), path)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(path)


@pytest.mark.parametrize("content", [{"epoch": 3, "best_prec1": 0.9}, [torch.zeros(3)], {}])
def test_checkpoint_without_weights(tmp_path, content):
    path = tmp_path / "model.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="not model weights"):
        load(path)


class _Payload:
    """A pickle that creates a file when unpickled: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("save", [torch.save, lambda obj, path: path.write_bytes(pickle.dumps(obj))])
def test_malicious_pickle_is_refused_without_running(tmp_path, save):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    save(_Payload(marker), path)
    with pytest.raises(CheckpointError, match="refused.*could run arbitrary code.*--trust-checkpoint"):
        load(path)
    assert not marker.exists()


def test_pickled_module_needs_trust(resnet8, tmp_path):
    path = tmp_path / "full_model.pt"
    torch.save(resnet8, path)
    refusal = "pickled edgeresnet.models.cifar.CifarResNet.*--trust-checkpoint"
    with pytest.raises(CheckpointError, match=refusal):
        load(path)
    model, spec = load_with_spec(path, trust_checkpoint=True)
    assert spec.name == "resnet8" and same_outputs(model, resnet8)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(resnet8, tmp_path, bad):
    state_dict = resnet8.state_dict()
    state_dict["layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    path = tmp_path / "model.pt"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match="'layer2.0.conv1.weight'.*NaN or Inf"):
        load(path)
