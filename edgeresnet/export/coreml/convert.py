"""PyTorch -> Core ML ML Program (.mlpackage) in fp16, with int8 weights, or W8A8.

The model is traced with TorchScript and converted by coremltools. Three precisions:

* ``fp16``: ML Program with fp16 weights and fp16 compute (the ML Program default).
* ``int8w``: the same program, then every conv/linear kernel linearly quantized to int8,
  symmetric, one scale per output channel (``constexpr_affine_dequantize`` ops, iOS 16+);
  activations stay fp16. Core ML dequantizes on load or on the fly; it saves size, not
  integer compute.
* ``w8a8``: a model already quantized by w8a8.quantize_w8a8 (or by training); its
  quantize/dequantize pairs become int8 weights and 8-bit activations (iOS 17+).

Linux can convert and read a package but cannot run one (prediction needs macOS);
check.py checks what the file declares there (spec.py reads it), and runs it on macOS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...backends import converter_quiet, import_coremltools
from ...errors import ConversionError, EdgeResNetError
from ...models.model import Model
from ...preprocess import Preprocess

INPUT_NAME = "input"  # tensor input: NCHW float32, already normalised
IMAGE_INPUT_NAME = "image"  # image input: an RGB (or BGR) picture of input_size x input_size
OUTPUT_NAME = "logits"
PROBABILITIES_NAME = "probabilities"  # image input without labels: softmax output
CLASS_LABEL_NAME = "classLabel"  # image input with labels: Core ML classifier outputs
PRECISIONS = ("fp16", "int8w", "w8a8")

# Deployment targets: an fp16 ML Program runs from iOS 15 / macOS 12; int8 weights
# (constexpr_affine_dequantize) need iOS 16 / macOS 13; activation quantize ops iOS 17 / macOS 14.
_TARGETS = {"fp16": "iOS15", "int8w": "iOS16", "w8a8": "iOS17"}
# Names of coremltools' metadata entries; the conversion date is removed so that two
# exports of the same model are byte-identical.
_DATE_KEY = "com.github.apple.coremltools.conversion_date"
_META_PREFIX = "edgeresnet."

# --------------------------------------------------------------------------- export


def export_coreml(model: Model, output: Path, precision: str, *, image_input: bool = False) -> Path:
    """Write `model` as a Core ML ML Program package at `output` (a ``.mlpackage`` directory).

    Default: input ``"input"``, a (1, 3, H, W) float32 tensor already normalised as
    ``model.preprocess`` says; output ``"logits"``, (1, num_classes) float32.

    ``image_input=True``: preprocessing is baked in. Input ``"image"`` is an image of
    input_size x input_size in ``preprocess.channel_order``; the output is softmax
    probabilities: a Core ML classifier (``classLabel`` and ``classLabel_probs``, a
    label -> probability dict) when the model has labels, else ``"probabilities"``.
    """
    if precision not in PRECISIONS:
        raise EdgeResNetError(f"unknown Core ML precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    output = Path(output)
    if output.suffix != ".mlpackage":
        raise EdgeResNetError(
            f"a Core ML ML Program is a .mlpackage directory, not {output.name!r}", "name the output <model>.mlpackage"
        )
    ct = import_coremltools()
    preprocess = model.preprocess

    module = model.copy_module().eval()  # never trace or mutate the caller's module
    if image_input:
        module, scale, bias = _image_wrapper(module, preprocess)
        inputs = [
            ct.ImageType(
                name=IMAGE_INPUT_NAME,
                shape=model.input_shape,
                scale=scale,
                bias=bias,
                color_layout=ct.colorlayout.RGB if preprocess.channel_order == "RGB" else ct.colorlayout.BGR,
                channel_first=True,
            )
        ]
        classifier = ct.ClassifierConfig(list(model.labels)) if model.labels else None
        # A classifier's outputs are named by ClassifierConfig; naming the tensor it reads
        # would only rename the dict (to "<name>" instead of "classLabel_probs").
        outputs = None if classifier else [ct.TensorType(name=PROBABILITIES_NAME, dtype=np.float32)]
    else:
        inputs = [ct.TensorType(name=INPUT_NAME, shape=model.input_shape, dtype=np.float32)]
        outputs = [ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)]
        classifier = None

    with converter_quiet(), _conversion_errors(f"Core ML {precision} conversion of {model.arch}"):
        traced = torch.jit.trace(module, torch.zeros(model.input_shape), check_trace=False)
        mlmodel = ct.convert(
            traced,
            convert_to="mlprogram",
            inputs=inputs,
            outputs=outputs,
            classifier_config=classifier,
            minimum_deployment_target=getattr(ct.target, _TARGETS[precision]),
            compute_precision=ct.precision.FLOAT16,
            compute_units=ct.ComputeUnit.ALL,
        )
        if precision == "int8w":
            mlmodel = _quantize_weights(ct, mlmodel)
    _set_metadata(mlmodel, model, precision, image_input)

    with converter_quiet(), _conversion_errors("saving the Core ML package"):
        _save_package(mlmodel, output)
    return output


def _image_wrapper(module: nn.Module, preprocess: Preprocess):
    """The module wrapped to take 0-255 pixels and return probabilities, plus ImageType's scale and bias.

    Core ML's ImageType applies ``scale * pixel + bias[c]``: one scale for all channels,
    a bias per channel. Normalisation is ``(pixel / 255 - mean[c]) / std[c]``, i.e. scale
    ``1 / (255 std[c])`` and bias ``-mean[c] / std[c]``, which ImageType represents exactly
    only when the three std values are equal. When they differ (ImageNet's, the default),
    the per-channel affine goes into the wrapper and ImageType passes raw pixels (scale 1,
    bias 0). Both compute the same affine: in an ML Program ImageType's scale and bias are
    themselves a mul and an add at the top of the graph (in fp32, before the cast to fp16),
    while the wrapper's becomes an fp16 ``batch_norm`` (variance 1, epsilon 1e-5: a 5e-6
    relative error, far under fp16's 5e-4 rounding), so the wrapper costs nothing extra.
    A per-channel scale folded into ImageType's single scale would be wrong by up to 2%
    (ImageNet's std), so it is never approximated. Biases are in the model's channel
    order, which is also the order Core ML feeds the channels in (``color_layout``).
    """
    mean = np.asarray(preprocess.mean, dtype=np.float64)
    std = np.asarray(preprocess.std, dtype=np.float64)
    if np.all(std == std[0]):
        return _Probabilities(module), float(1.0 / (255.0 * std[0])), [float(b) for b in -mean / std]
    return _Probabilities(module, scale=1.0 / (255.0 * std), bias=-mean / std), 1.0, [0.0, 0.0, 0.0]


class _Probabilities(nn.Module):
    """Optional per-channel ``x * scale + bias`` before the network, softmax after it."""

    scale: torch.Tensor  # buffers, when normalise
    bias: torch.Tensor

    def __init__(self, net: nn.Module, scale: np.ndarray | None = None, bias: np.ndarray | None = None):
        super().__init__()
        self.net = net
        self.normalise = scale is not None
        if self.normalise:
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("bias", torch.tensor(bias, dtype=torch.float32).view(1, 3, 1, 1))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = x * self.scale + self.bias
        return torch.softmax(self.net(x), dim=1)


def _quantize_weights(ct, mlmodel):
    """int8, symmetric, per output channel, on every conv/linear kernel.

    ``weight_threshold=0``: coremltools' default (2048 elements) would leave small kernels
    (a CIFAR stem, a 10-class head) in fp16. 1-D constants (biases) are never quantized
    by coremltools, so they stay fp16.
    """
    import coremltools.optimize.coreml as cto

    op_config = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric",
        dtype="int8",
        granularity="per_channel",
        weight_threshold=0,
    )
    return cto.linear_quantize_weights(mlmodel, config=cto.OptimizationConfig(global_config=op_config))


def _set_metadata(mlmodel, model: Model, precision: str, image_input: bool) -> None:
    from ..._version import __version__

    p = model.preprocess
    norm = f"mean {list(p.mean)} std {list(p.std)}"
    if image_input:
        what = (
            f"{p.channel_order} {p.input_size}x{p.input_size} image in (normalised inside: {norm}); "
            f"class probabilities out"
        )
    else:
        what = (
            f"{p.channel_order} NCHW float32 (1,3,{p.input_size},{p.input_size}) in, already "
            f"normalised as (x/255 - mean)/std with {norm}; logits out"
        )
    mlmodel.author = "edgeresnet"
    mlmodel.version = __version__
    mlmodel.short_description = f"{model.arch} ({model.num_classes} classes, {precision}): {what}"
    meta = mlmodel.user_defined_metadata
    meta.pop(_DATE_KEY, None)
    meta[_META_PREFIX + "arch"] = model.arch
    meta[_META_PREFIX + "precision"] = precision
    meta[_META_PREFIX + "input"] = "image" if image_input else "tensor"
    meta[_META_PREFIX + "preprocessing"] = json.dumps(p.model_dump(mode="json"), sort_keys=True)
    meta[_META_PREFIX + "labels"] = json.dumps(list(model.labels) if model.labels else None)
    # A model quantized for export records the weights it was quantized from.
    meta[_META_PREFIX + "source_sha256"] = model.options.get("source_sha256") or model.fingerprint()
    if image_input:
        mlmodel.input_description[IMAGE_INPUT_NAME] = (
            f"{p.channel_order} image, {p.input_size}x{p.input_size} (resize/crop it first)"
        )
    else:
        mlmodel.input_description[INPUT_NAME] = (
            f"normalised NCHW float32 image batch (1,3,{p.input_size},{p.input_size})"
        )
        mlmodel.output_description[OUTPUT_NAME] = f"logits, (1,{model.num_classes})"


def _save_package(mlmodel, output: Path) -> None:
    """Save through a temporary sibling, then replace `output`: a failed save leaves no half package."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.stem}-", dir=output.parent))
    try:
        package = staging / output.name
        mlmodel.save(str(package))
        _stable_manifest(package)
        _stable_spec(package)
        _plain_permissions(package)
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(package, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stable_spec(package: Path) -> None:
    """Re-serialize model.mlmodel with protobuf's deterministic (sorted) map order.

    The spec is full of protobuf maps (op inputs and attributes, user metadata) whose
    serialized order follows a hash seeded per process: the same model saved by two
    processes gives the same message in different byte orders. Sorting the keys fixes it.
    """
    from coremltools.proto import Model_pb2

    manifest = json.loads((package / "Manifest.json").read_text())
    root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    path = package / "Data" / root
    spec = Model_pb2.Model()
    spec.ParseFromString(path.read_bytes())
    path.write_bytes(spec.SerializeToString(deterministic=True))


def _plain_permissions(package: Path) -> None:
    """Files 0644 and folders 0755 (less the umask): coremltools stages through private temp dirs (0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    for item in [package, *package.rglob("*")]:
        item.chmod((0o755 if item.is_dir() else 0o644) & ~umask)


def _stable_manifest(package: Path) -> None:
    """Replace the random item identifiers of Manifest.json by ones derived from each item's path.

    The package writer names each item (the spec, the weights folder) by a fresh random
    UUID, so two exports of the same model always differ in that one file. The identifiers
    only link ``rootModelIdentifier`` to its entry; any UUID works, so a name-based UUID
    (uuid5 of the item path) gives the same bytes every time.
    """
    path = package / "Manifest.json"
    manifest = json.loads(path.read_text())
    renamed = {
        key: str(uuid.uuid5(uuid.NAMESPACE_URL, "edgeresnet:" + entry["path"])).upper()
        for key, entry in manifest["itemInfoEntries"].items()
    }
    manifest["itemInfoEntries"] = {renamed[key]: entry for key, entry in manifest["itemInfoEntries"].items()}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- converter errors


@contextlib.contextmanager
def _conversion_errors(what: str):
    """Any converter exception -> one-line ConversionError with its reason and, where known, the layer."""
    try:
        yield
    except EdgeResNetError:
        raise
    except Exception as exc:  # coremltools raises anything from ValueError to NotImplementedError
        where = _failing_layer(exc)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if len(reason) > 400:
            reason = reason[:400] + "..."
        at = f" at {where}" if where else ""
        raise ConversionError(
            f"{what} failed{at}: {reason}",
            "replace or remove that layer, or export ONNX/TFLite instead",
        ) from exc


def _failing_layer(exc: BaseException) -> str | None:
    """The torch node or MIL op being converted when `exc` was raised, from the converter's frames.

    coremltools' torch frontend converts node by node (``convert_nodes`` holds ``node``),
    and MIL passes work op by op (``op``); it logs the location but does not put it in
    the exception, so read it from the innermost frame that has one.
    """
    torch_at = mil_at = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if "coremltools" in frame.f_code.co_filename:
            local = frame.f_locals
            node, op = local.get("node"), local.get("op")
            try:
                if node is not None and hasattr(node, "kind") and hasattr(node, "get_scope_info"):
                    # The scope is the module path, then the node's own output name.
                    module = ".".join([s for s in node.get_scope_info()[0] if s][:-1])
                    torch_at = f"torch op '{node.kind}'" + (
                        f" in module '{module}'" if module else " in the top-level forward"
                    )
                elif op is not None and hasattr(op, "op_type") and hasattr(op, "name"):
                    mil_at = f"MIL op '{op.op_type}' ('{op.name}')"
            except Exception:  # the location is a courtesy; never hide the real error
                pass
        tb = tb.tb_next
    # The torch module path is what the user can act on; the MIL op adds detail.
    if torch_at and mil_at:
        return f"{torch_at} ({mil_at})"
    return torch_at or mil_at
