"""The catalogue of bad inputs: each case builds its input and names the command that meets it.

tests/test_bad_inputs.py runs every case and checks the contract (one line, exit code 2, no
traceback, nothing half-written); `python tests/bad_inputs.py` runs them all and writes the
table of messages users see to docs/bad-inputs.md, which the test keeps in step.
"""

from __future__ import annotations

import contextlib
import errno
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager
from unittest import mock

import numpy as np
import torch
from PIL import Image

from helpers import make_image_folder

RUN = "RUN"  # stands for the run directory a case's command would write


@dataclass(frozen=True)
class Case:
    name: str  # what is wrong, as the docs table says it
    group: str
    build: Callable[[Path], list]  # makes the input under a folder; returns the command's arguments
    expect: str  # part of the line the user must see (case-insensitive); for an accepted input, what happens
    exit_code: int = 2  # 0: an input that looks odd but is valid, and is accepted
    during: Callable[[], ContextManager] = contextlib.nullcontext  # what the machine does meanwhile

def demo_weights() -> Path:
    from edgeresnet.assets import DEMO_MODEL

    return Path(DEMO_MODEL)


def images(root: Path, classes=tuple(f"c{i}" for i in range(10)), per_class: int = 1) -> Path:
    return make_image_folder(root / "images", classes=classes, per_class=per_class)


def compress(model, data, *more, target: str = "onnx") -> list:
    return ["compress", model, "--data", data, "--target", target, "--out", RUN, *more]


def _state_dict() -> dict:
    return torch.load(demo_weights(), weights_only=True)["state_dict"]


def _checkpoint(root: Path, name: str, change: Callable[[dict], None]) -> Path:
    state = _state_dict()
    change(state)
    path = root / name
    torch.save({"state_dict": state}, path)
    return path


def _payload_pickle(root: Path, name: str) -> Path:
    """A pickle whose loading would create a file: the test checks the file never appears."""

    class Payload:
        def __reduce__(self):
            return (open, (str(root / "PWNED"), "w"))

    path = root / name
    path.write_bytes(pickle.dumps({"state_dict": Payload()}))
    return path


def _torch_zip_with_payload(root: Path) -> Path:
    """A torch.save zip whose data.pkl runs code: the modern format carries pickles too."""
    path = root / "model.pt"
    torch.save({"state_dict": {}}, path)
    payload = _payload_pickle(root, "payload.pkl").read_bytes()
    with zipfile.ZipFile(path) as original:
        entries = {info.filename: original.read(info) for info in original.infolist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    entries[name] = payload
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as rewritten:
        for entry, data in entries.items():
            rewritten.writestr(entry, data)
    return path


def _pickled_module(root: Path) -> Path:
    from edgeresnet.models import create

    path = root / "module.pt"
    torch.save(create("resnet8"), path)
    return path


def _unimportable_module(root: Path) -> Path:
    """A whole module pickled from a class that only the author's own code defines."""
    import sys
    import types

    source = types.ModuleType("authors_private_models")
    exec("import torch.nn as nn\nclass MyResNet(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
         "        self.conv1 = nn.Conv2d(3, 8, 3)\n", source.__dict__)
    sys.modules[source.__name__] = source
    try:
        path = root / "my_resnet.pt"
        torch.save(source.MyResNet(), path)
    finally:
        del sys.modules[source.__name__]
    return path


def _pt2(root: Path, edit: Callable[[dict], None]) -> Path:
    """A torch.export archive of the demo ResNet-20 whose records (names under the archive's
    root folder) ``edit`` changed."""
    import json

    from edgeresnet.models import create

    module = create("resnet20").eval()
    good = root / "good.pt2"
    torch.export.save(torch.export.export(module, (torch.zeros(1, 3, 32, 32),)), good)
    with zipfile.ZipFile(good) as archive:
        old = {name: archive.read(name) for name in archive.namelist()}
    top = next(iter(old)).split("/", 1)[0]
    inner = {name[len(top) + 1:]: data for name, data in old.items()}
    edit(inner, json)
    path = root / "model.pt2"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in inner.items():
            archive.writestr(f"{top}/{name}", data)
    return path


def _pt2_pickled_weight(root: Path) -> Path:
    class Payload:
        def __reduce__(self):
            return (open, (str(root / "PWNED"), "w"))

    def edit(inner, json):
        name = "data/weights/model_weights_config.json"
        config = json.loads(inner[name])
        entry = config["config"]["linear.weight"]
        entry["use_pickle"] = True
        buffer = io.BytesIO()
        torch.save(Payload(), buffer)
        inner["data/weights/" + entry["path_name"]] = buffer.getvalue()
        inner[name] = json.dumps(config).encode()

    return _pt2(root, edit)


def _pt2_shape_code(root: Path) -> Path:
    # Harmless if it ran (tests/test_pt2.py proves such code runs under torch.export.load); no
    # path in it, so that the message in docs/bad-inputs.md does not depend on the folder.
    payload = "__import__('os').getcwd() or Symbol('s0', positive=True)"

    def edit(inner, json):
        program = json.loads(inner["models/model.json"])
        values = program["graph_module"]["graph"]["tensor_values"]
        first = next(iter(values))
        values[first]["sizes"][0] = {"as_expr": {"expr_str": payload, "hint": {"as_int": 1}}}
        inner["models/model.json"] = json.dumps(program).encode()

    return _pt2(root, edit)


def _hub_folder(root: Path, config: dict | str | None, weights: str | None = "model.safetensors") -> Path:
    import json

    folder = root / "hub-model"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if weights == "model.safetensors":
        from safetensors.torch import save_file

        save_file({"resnet.embedder.embedder.convolution.weight": torch.zeros(8, 3, 7, 7)}, folder / weights)
    elif weights == "pytorch_model.bin":
        _payload_pickle(folder, weights)
    return folder


_RESNET_CONFIG = {"model_type": "resnet", "id2label": {"0": "cat", "1": "dog"}}


def _truncated(root: Path) -> Path:
    path = root / "truncated.pt"
    data = demo_weights().read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupted(root: Path) -> Path:
    path = root / "corrupted.pt"
    data = bytearray(demo_weights().read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    return path


def _image_file(root: Path, name: str, write: Callable[[Path], None]) -> Path:
    folder = images(root)
    write(folder / "c0" / name)
    return folder


def _not_a_resnet(root: Path) -> Path:
    path = root / "mlp.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).state_dict(), path)
    return path


def _recipe(root: Path, text: str) -> Path:
    path = root / "recipe.yaml"
    path.write_text(text)
    return path


def _npz(root: Path, **arrays) -> Path:
    path = root / "data.npz"
    np.savez(path, **arrays)
    return path


def _png_bomb(path: Path) -> None:
    """A PNG header that claims 40,000 x 40,000 pixels (1.6 gigapixels) in a few bytes."""
    buffer = io.BytesIO()
    Image.new("1", (40_000, 40_000)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _unwritable_out(root: Path) -> list:
    """--out under a regular file: no directory can be made there, root or not (chmod binds no root)."""
    blocker = root / "a-file"
    blocker.write_text("")
    return ["compress", demo_weights(), "--data", images(root), "--target", "onnx", "--out", blocker / "run"]


def _held_run(root: Path) -> list:
    run = root / "held"
    run.mkdir()
    (run / "report.json").write_text("{}")
    return ["compress", demo_weights(), "--data", images(root), "--target", "onnx", "--out", run]


def _tampered_artifact(root: Path, suffix: str) -> list:
    """A real artifact (demo model, tiny data) whose file was changed after its manifest was written."""
    from edgeresnet.cli import main

    run = root / "exported"
    target = {".tflite": "tflite-fp32", ".bin": "openvino-fp32"}[suffix]
    try:
        main.main(["export", "--data", str(images(root)), "--target", target, "--out", str(run)],
                  prog_name="edgeresnet")
    except SystemExit as done:
        assert done.code in (0, None), done.code
    path = next((run / target).glob(f"*{suffix}"))
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(64)
    path.write_bytes(bytes(data))
    return ["bench", run / target]


CASES = [
    # Checkpoints
    Case("model file missing", "checkpoint", lambda r: compress(r / "nope.pt", images(r)), "not found"),
    Case("truncated checkpoint", "checkpoint", lambda r: compress(_truncated(r), images(r)), "truncated or corrupt"),
    Case("corrupted checkpoint (4 KB of tensor bytes zeroed)", "checkpoint",
         lambda r: compress(_corrupted(r), images(r)), "checksum"),
    Case("text file named .pt", "checkpoint",
         lambda r: compress((r / "notes.pt", (r / "notes.pt").write_text("hello"))[0], images(r)), "checkpoint"),
    Case("pickle that runs code (.pth)", "checkpoint",
         lambda r: compress(_payload_pickle(r, "evil.pth"), images(r)), "--trust-checkpoint"),
    Case("pickle that runs code, named .safetensors", "checkpoint",
         lambda r: compress(_payload_pickle(r, "evil.safetensors"), images(r)), "safetensors"),
    Case("pickle that runs code, named .bin", "checkpoint",
         lambda r: compress(_payload_pickle(r, "evil.bin"), images(r)), "--trust-checkpoint"),
    Case("a whole pickled nn.Module instead of a state dict", "checkpoint",
         lambda r: compress(_pickled_module(r), images(r)), "--trust-checkpoint"),
    Case("torch.save zip whose data.pkl runs code", "checkpoint",
         lambda r: compress(_torch_zip_with_payload(r), images(r)), "--trust-checkpoint"),
    Case("state dict of another architecture (ResNet-20 weights, --arch resnet56)", "checkpoint",
         lambda r: compress(demo_weights(), images(r), "--arch", "resnet56"), "resnet56"),
    Case("a network that is not a ResNet", "checkpoint", lambda r: compress(_not_a_resnet(r), images(r)),
         "resnet"),
    Case("NaN in the weights", "checkpoint",
         lambda r: compress(_checkpoint(r, "nan.pt", lambda s: s["conv1.weight"].view(-1)[0].fill_(float("nan"))),
                            images(r)), "nan"),
    Case("Inf in the weights", "checkpoint",
         lambda r: compress(_checkpoint(r, "inf.pt", lambda s: s["linear.weight"].view(-1)[3].fill_(float("inf"))),
                            images(r)), "inf"),
    Case("a pickled module whose class cannot be imported here (--trust-checkpoint)", "checkpoint",
         lambda r: compress(_unimportable_module(r), images(r), "--trust-checkpoint"), "PYTHONPATH"),
    Case("torch.export .pt2 whose weight is a pickle that runs code", "checkpoint",
         lambda r: compress(_pt2_pickled_weight(r), images(r)), "--trust-checkpoint"),
    Case("torch.export .pt2 whose shape expression runs code", "checkpoint",
         lambda r: compress(_pt2_shape_code(r), images(r)), "symbolic shape expression"),
    Case("a folder with no model in it", "checkpoint",
         lambda r: compress((r / "folder", (r / "folder").mkdir())[0], images(r)), "looked for config.json"),
    Case("Hugging Face folder of another kind of model (vit)", "checkpoint",
         lambda r: compress(_hub_folder(r, {"model_type": "vit"}), images(r)), "not a ResNet"),
    Case("Hugging Face folder without weights", "checkpoint",
         lambda r: compress(_hub_folder(r, _RESNET_CONFIG, None), images(r)), "no weights"),
    Case("Hugging Face folder whose config.json is not JSON", "checkpoint",
         lambda r: compress(_hub_folder(r, "{model_type: resnet"), images(r)), "config.json"),
    Case("Hugging Face folder whose pytorch_model.bin runs code", "checkpoint",
         lambda r: compress(_hub_folder(r, _RESNET_CONFIG, "pytorch_model.bin"), images(r)), "--trust-checkpoint"),
    Case("Hugging Face folder whose weights are not a whole ResNet", "checkpoint",
         lambda r: compress(_hub_folder(r, _RESNET_CONFIG), images(r)), "not a ResNet"),
    Case("unknown --arch", "checkpoint", lambda r: compress(demo_weights(), images(r), "--arch", "resnet21"),
         "resnet20"),
    Case("model with 10 classes, data with 2", "checkpoint",
         lambda r: compress(demo_weights(), images(r, classes=("a", "b"))), "classes"),
    # Data
    Case("data path missing", "data", lambda r: compress(demo_weights(), r / "nowhere"), "does not exist"),
    Case("empty data folder", "data", lambda r: compress(demo_weights(), (r / "empty", (r / "empty").mkdir())[0]),
         "is empty"),
    Case("images without class folders (no labels)", "data",
         lambda r: compress(demo_weights(), _flat_images(r)),
         "accepted: unlabelled; calibrated, verified and timed, accuracy reads \"no labels\"", exit_code=0),
    Case("loose images beside class folders", "data",
         lambda r: compress(demo_weights(), _mixed_images(r)), "mixes"),
    Case("zero-length image file", "data",
         lambda r: compress(demo_weights(), _image_file(r, "empty.jpg", lambda p: p.write_bytes(b""))), "empty.jpg"),
    Case("corrupt image (random bytes)", "data",
         lambda r: compress(demo_weights(), _image_file(r, "noise.jpg",
                                                         lambda p: p.write_bytes(np.random.bytes(2048)))),
         "noise.jpg"),
    Case("image that decompresses to 1.6 gigapixels", "data",
         lambda r: compress(demo_weights(), _image_file(r, "bomb.png", _png_bomb)), "bomb.png"),
    Case("zip with no images", "data", lambda r: compress(demo_weights(), _empty_zip(r)), "no images"),
    Case(".npz without labels", "data",
         lambda r: compress(demo_weights(), _npz(r, images=np.zeros((4, 32, 32, 3), np.uint8))),
         "accepted: unlabelled, as images without class folders", exit_code=0),
    Case(".npz without images", "data",
         lambda r: compress(demo_weights(), _npz(r, labels=np.zeros(4, np.int64))), "'images'"),
    Case("--max-accuracy-drop with unlabelled data", "data",
         lambda r: compress(demo_weights(), _flat_images(r), "--max-accuracy-drop", "1"), "no labels"),
    Case("int8 target and no --data", "data",
         lambda r: ["export", demo_weights(), "--target", "tflite-int8", "--out", RUN], "calibration images"),
    Case("evaluate on unlabelled data", "data",
         lambda r: ["evaluate", demo_weights(), "--data", _flat_images(r)], "needs labels"),
    Case(".npz with images and labels of different lengths", "data",
         lambda r: compress(demo_weights(), _npz(r, images=np.zeros((4, 32, 32, 3), np.uint8),
                                                 labels=np.zeros(3, np.int64))), "labels"),
    Case("grayscale, CMYK, palette, RGBA, 16-bit and odd-sized images", "data",
         lambda r: compress(demo_weights(), _odd_images(r)), "accepted: converted to RGB and resized", exit_code=0),
    # Recipes
    Case("malformed YAML", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe", _recipe(r, "stages: [ptq\n")), "recipe.yaml"),
    Case("YAML that builds a Python object", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe",
                            _recipe(r, "name: x\nstages: !!python/object/apply:os.system ['touch PWNED']\n")),
         "recipe.yaml"),
    Case("unknown stage", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe", _recipe(r, "name: x\nstages: [quantise]\n")),
         "quantise"),
    Case("unknown key, with a suggestion", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe",
                            _recipe(r, "name: x\nstages:\n  - qat: {epoch: 2}\n")), "epochs"),
    Case("value of the wrong type", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe",
                            _recipe(r, "name: x\nstages:\n  - qat: {epochs: many}\n")), "epochs"),
    Case("stages in an impossible order", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe",
                            _recipe(r, "name: x\nstages: [qat, prune]\n")), "prune"),
    Case("override of an unknown setting", "recipe",
         lambda r: compress(demo_weights(), images(r), "--recipe", "qat-int8", "-o", "qat.epoks=2"), "epochs"),
    Case("distill that weighs labels, on unlabelled --train-data", "recipe",
         lambda r: compress(demo_weights(), images(r), "--train-data", _flat_images(r), "--recipe",
                            _recipe(r, "name: x\nstages:\n  - distill: {alpha: 0.9}\n")), "distill.alpha=1"),
    # Targets
    Case("unknown target", "target", lambda r: compress(demo_weights(), images(r), target="tflite-int4"),
         "tflite-int4"),
    Case("QAT recipe for one runtime, int8 target of another", "target",
         lambda r: compress(demo_weights(), images(r), "--train-data", images(r), "--recipe", "qat-int8",
                            "-o", "qat.scheme=tflite", target="openvino-int8"), "openvino-int8"),
    Case("batch size 1 while batch norm trains", "recipe",
         lambda r: compress(demo_weights(), images(r), "--train-data", images(r), "--recipe", "qat-int8",
                            "-o", "qat.batch_size=1", target="tflite-int8"), "batch_size"),
    # Training hardware
    Case("training device this machine lacks", "device",
         lambda r: compress(demo_weights(), images(r), "--device", "mps"), "--device mps"),
    Case("float16 training on a CPU", "device",
         lambda r: compress(demo_weights(), images(r), "--train-data", images(r), "--recipe", "qat-int8",
                            "-o", "qat.precision=fp16", target="tflite-int8"), "fp16"),
    # Output
    Case("output directory already holds a run", "output", _held_run, "--overwrite"),
    Case("output directory that cannot be created", "output", _unwritable_out, "--out"),
    Case("disk full while writing the artifacts", "output", lambda r: compress(demo_weights(), images(r)),
         "no space left", during=lambda: _disk_full()),
    # Artifacts
    Case("TFLite file changed after export", "artifact", lambda r: _tampered_artifact(r, ".tflite"), "sha256"),
    Case("OpenVINO weights (.bin) changed after export", "artifact", lambda r: _tampered_artifact(r, ".bin"),
         "sha256"),
]


def _odd_images(root: Path) -> Path:
    """Grayscale, CMYK, palette, RGBA and 16-bit images, of several sizes, in one data set."""
    folder = images(root, classes=tuple(f"c{i}" for i in range(10)))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    odd = {"gray.png": Image.fromarray(pixels[..., 0]), "cmyk.jpg": Image.fromarray(pixels).convert("CMYK"),
           "palette.gif": Image.fromarray(pixels).convert("P"), "alpha.png": Image.fromarray(pixels).convert("RGBA"),
           "deep.png": Image.fromarray((pixels[..., 0].astype(np.uint16) * 257)), "tiny.png": Image.new("RGB", (5, 7))}
    for i, (name, image) in enumerate(odd.items()):
        image.save(folder / f"c{i}" / name)
    return folder


def _disk_full() -> ContextManager:
    """Every file the ONNX writer saves fails as a full disk fails."""
    return mock.patch("onnx.save", side_effect=OSError(errno.ENOSPC, "No space left on device"))


def _flat_images(root: Path) -> Path:
    folder = root / "flat"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / f"{i}.png")
    return folder


def _mixed_images(root: Path) -> Path:
    """An ImageFolder with loose images beside its class folders: labelled or not?"""
    folder = images(root)
    for i in range(2):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / f"loose{i}.png")
    return folder


def _empty_zip(root: Path) -> Path:
    path = root / "empty.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "nothing here")
    return path



# --------------------------------------------------------------------------- the docs table

DOCS = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
HEADER = """# Bad inputs and what the user sees

Every row is a case of `tests/bad_inputs.py`, run by `tests/test_bad_inputs.py`: the command
prints this one line on stderr and exits with code 2, with no traceback; nothing is written to
`--out` (runs are staged in a hidden sibling folder and moved into place only when complete),
and no code in a checkpoint or recipe runs. `<dir>` stands for the folder the case ran in.
Regenerate with `.venv/bin/python tests/bad_inputs.py` after changing a message.

| input | group | what the user sees |
| --- | --- | --- |
"""


def shown(case: Case, stderr: str, root: Path) -> str:
    """The line the docs show for a case: the error line, paths relative to the case's folder."""
    if case.exit_code == 0:
        return case.expect
    line = next(line for line in stderr.splitlines() if line.startswith("error: "))
    return line.replace(str(root.resolve()), "<dir>").replace(str(root), "<dir>")


def docs_table(lines: dict[str, str]) -> str:
    rows = [f"| {case.name} | {case.group} | {f'`{lines[case.name]}`' if case.exit_code else lines[case.name]} |"
            for case in CASES]
    return HEADER + "\n".join(rows) + "\n"

if __name__ == "__main__":
    import tempfile

    from test_bad_inputs import run_case

    lines = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            _, _, stderr = run_case(case, Path(tmp))
            lines[case.name] = shown(case, stderr, Path(tmp))
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text(docs_table(lines))
    print(f"wrote {DOCS} ({len(CASES)} cases)")
