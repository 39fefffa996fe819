"""read_pt2(): a torch.export archive round trip, and hostile archives that must not run code.

The hostile archives are a legitimate .pt2 with records rewritten inside the zip. Each
holds a pickle whose ``__reduce__`` calls ``pathlib.Path.touch`` on a marker file: a
refusal must leave no marker. A few tests check the opposite with ``trust=True`` (that is,
``torch.export.load``), to show that the archive really is hostile.
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeresnet.errors import CheckpointError
from edgeresnet.intake.pt2 import is_pt2, read_pt2

REFUSED = r"refused to load .*could run arbitrary code; if you trust the file, pass --trust-checkpoint"


class Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(Block(4))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.avgpool(self.layer1(x)), 1))


class Touch:
    """Unpickling this creates ``marker``: what a hostile file would do, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def tiny_resnet(train: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = TinyResNet()
    with torch.no_grad():  # statistics that are not the defaults, so eval mode shows
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.train(train)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, nn.Module]:
    model = tiny_resnet()
    path = tmp_path_factory.mktemp("pt2") / "net.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 8, 8),)), path)
    return path, model


def records(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` whose records (names without the root folder) ``edit`` changed."""
    old = records(source)
    root = next(iter(old)).split("/", 1)[0]
    inner = {name[len(root) + 1 :]: data for name, data in old.items()}
    edit(inner)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, data in inner.items():
            archive.writestr(f"{root}/{name}", data)
    return target


def edit_json(inner: dict[str, bytes], name: str, change) -> None:
    doc = json.loads(inner[name])
    change(doc)
    inner[name] = json.dumps(doc).encode()


def torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def load_trusted_quietly(path: Path) -> None:
    with contextlib.suppress(Exception):
        read_pt2(path, trust=True)


WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"


# --- a legitimate archive ---------------------------------------------------------------


def test_round_trip_gives_identical_outputs(saved, monkeypatch):
    path, model = saved

    def no_full_unpickling(*args, **kwargs):
        raise AssertionError("read_pt2 unpickled something in full")

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        assert kwargs.get("weights_only") is True, "torch.load without weights_only=True"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pickle, "loads", no_full_unpickling)
    monkeypatch.setattr(pickle, "load", no_full_unpickling)
    monkeypatch.setattr(torch, "load", weights_only_load)
    loaded = read_pt2(path)
    monkeypatch.undo()

    assert not loaded.training and all(not m.training for m in loaded.modules())
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x[:1]), model(x[:1]))
        # the trusted path (torch.export.load) gives the same module
        assert torch.equal(read_pt2(path, trust=True)(x[:1]), model(x[:1]))


def test_a_program_exported_in_training_mode_runs_in_eval_mode(tmp_path):
    model = tiny_resnet(train=True)
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "train.pt2"
    torch.export.save(torch.export.export(model, (x,)), path)
    with torch.no_grad():
        assert torch.allclose(read_pt2(path)(x), model.eval()(x), atol=1e-6)


def test_is_pt2_tells_the_archive_from_torch_save_and_torchscript(saved, tmp_path):
    path, model = saved
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), tmp_path / "scripted.pt")
    (tmp_path / "notes.txt").write_text("hello")
    assert is_pt2(path)
    assert not is_pt2(tmp_path / "weights.pt")
    assert not is_pt2(tmp_path / "scripted.pt")
    assert not is_pt2(tmp_path / "notes.txt")
    assert not is_pt2(tmp_path / "missing.pt2")


# --- hostile archives -------------------------------------------------------------------


def test_a_pickled_weight_is_refused_without_unpickling_it(saved, tmp_path):
    path, _ = saved
    marker = tmp_path / "MARKER"

    def edit(inner):
        def flag(doc):
            doc["config"]["fc.weight"]["use_pickle"] = True
            inner["data/weights/" + doc["config"]["fc.weight"]["path_name"]] = torch_saved(Touch(marker))

        edit_json(inner, WEIGHTS_CONFIG, flag)

    hostile = rewrite(path, tmp_path / "hostile.pt2", edit)
    with pytest.raises(CheckpointError, match=REFUSED) as error:
        read_pt2(hostile)
    assert "weight 'fc.weight' is marked use_pickle" in str(error.value)
    assert re.search(r"its record data/weights/weight_\d+ holds a pickled (getattr|pathlib)", str(error.value))
    assert not marker.exists()

    load_trusted_quietly(hostile)  # torch.export.load unpickles it with weights_only=False
    assert marker.exists()


@pytest.mark.parametrize(
    "record, found",
    [
        ("opaque_obj_0", "constant 'evil' is a pickled opaque Python object"),
        ("custom_obj_0", "constant 'evil' is a pickled torchbind script object"),
        ("tensor_0", "constant 'evil' is marked use_pickle .* holds a pickled (getattr|pathlib)"),
    ],
)
def test_a_pickled_constant_is_refused_without_unpickling_it(saved, tmp_path, record, found):
    path, _ = saved
    marker = tmp_path / "MARKER"

    def edit(inner):
        def add(doc):
            doc["config"]["evil"] = {"path_name": record, "is_param": False, "use_pickle": True, "tensor_meta": None}

        edit_json(inner, CONSTANTS_CONFIG, add)
        evil = Touch(marker)
        inner["data/constants/" + record] = pickle.dumps(evil) if record == "opaque_obj_0" else torch_saved(evil)

    hostile = rewrite(path, tmp_path / "hostile.pt2", edit)
    with pytest.raises(CheckpointError, match=REFUSED) as error:
        read_pt2(hostile)
    assert re.search(found, str(error.value)), str(error.value)
    assert not marker.exists()
    if record == "opaque_obj_0":
        load_trusted_quietly(hostile)  # torch.export.load pickle.loads it
        assert marker.exists()


def test_a_weight_flagged_use_pickle_is_refused(saved, tmp_path):
    path, _ = saved

    def edit(inner):
        edit_json(inner, WEIGHTS_CONFIG, lambda doc: doc["config"]["conv1.weight"].update(use_pickle=True))

    hostile = rewrite(path, tmp_path / "flagged.pt2", edit)
    with pytest.raises(CheckpointError, match=REFUSED.replace("could run", "")) as error:
        read_pt2(hostile)
    assert "weight 'conv1.weight' is marked use_pickle" in str(error.value)


def test_a_shape_expression_that_sympify_would_eval_is_refused(saved, tmp_path):
    path, _ = saved
    marker = tmp_path / "MARKER"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch() or Symbol('s0', positive=True, integer=True)"

    def edit(inner):
        def poison(doc):
            sizes = doc["graph_module"]["graph"]["tensor_values"]["x"]["sizes"]
            sizes[0] = {"as_expr": {"expr_str": payload, "hint": {"as_int": 1}}}

        edit_json(inner, "models/model.json", poison)

    hostile = rewrite(path, tmp_path / "sympy.pt2", edit)
    with pytest.raises(CheckpointError, match=REFUSED) as error:
        read_pt2(hostile)
    assert "symbolic shape expression" in str(error.value) and "__import__" in str(error.value)
    assert not marker.exists()

    load_trusted_quietly(hostile)  # torch's deserializer hands it to sympy.sympify: eval
    assert marker.exists()


@pytest.mark.parametrize(
    "change, found",
    [
        (lambda gm: gm["graph"]["nodes"][0].update(target="torch.hub.load"), "calls 'torch.hub.load', which is not"),
        (
            lambda gm: gm["module_call_graph"][0]["signature"].update(forward_arg_names=["x):\n import os#"]),
            "is not a plain name",
        ),
    ],
)
def test_a_program_that_names_code_is_refused(saved, tmp_path, change, found):
    path, _ = saved
    hostile = rewrite(
        path, tmp_path / "code.pt2", lambda inner: edit_json(inner, "models/model.json", lambda d: change(d["graph_module"]))
    )
    with pytest.raises(CheckpointError, match=REFUSED) as error:
        read_pt2(hostile)
    assert found in str(error.value)


@pytest.mark.parametrize("kind", ["torch.save checkpoint", "TorchScript archive", "zip archive"])
def test_a_zip_that_is_no_torch_export_archive_is_refused(tmp_path, kind):
    path = tmp_path / "other.pt2"
    if kind == "torch.save checkpoint":
        torch.save(nn.Linear(2, 2).state_dict(), path)
    elif kind == "TorchScript archive":
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("other/readme.txt", "hello")
    with pytest.raises(CheckpointError, match=f"is not a torch.export archive \\(it is a {kind}"):
        read_pt2(path)


def test_a_file_that_is_no_zip_is_refused(tmp_path):
    path = tmp_path / "notes.pt2"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="is not a torch.export archive \\(it is not a zip file\\)"):
        read_pt2(path)


def test_a_truncated_archive(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read .*cut.pt2: the file is truncated or corrupt \(.*\); save or download it again"):
        read_pt2(cut)


def test_a_damaged_weight_fails_its_checksum(saved, tmp_path):
    path, _ = saved
    damaged = rewrite(path, tmp_path / "damaged.pt2", lambda inner: None)
    with zipfile.ZipFile(damaged) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/weights/weight_0"))
    data = bytearray(damaged.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"truncated or corrupt \(record .*weight_0 fails its checksum\)"):
        read_pt2(damaged)


def test_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="model file not found"):
        read_pt2(tmp_path / "nothing.pt2")


def test_the_sample_inputs_are_never_unpickled(saved, tmp_path):
    path, model = saved
    marker = tmp_path / "MARKER"

    def edit(inner):
        inner["data/sample_inputs/model.pt"] = torch_saved(Touch(marker))

    hostile = rewrite(path, tmp_path / "inputs.pt2", edit)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(read_pt2(hostile)(x), model(x))  # the sample inputs are not needed
    assert not marker.exists()

    load_trusted_quietly(hostile)  # torch retries a failed weights_only load with weights_only=False
    assert marker.exists()
