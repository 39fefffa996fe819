"""PyTorch -> Core ML ML Program (.mlpackage) in fp16 or with int8 weights, and its inspection.

The model is traced with TorchScript and converted by coremltools. Two precisions:

* ``fp16``: ML Program with fp16 weights and fp16 compute (the ML Program default).
* ``int8w``: the same program, then every conv/linear kernel linearly quantized to int8,
  symmetric, one scale per output channel (``constexpr_affine_dequantize`` ops, iOS 16+);
  activations stay fp16. Core ML dequantizes on load or on the fly; it saves size, not
  integer compute.

Linux can convert and read a package but cannot run one (prediction needs macOS), so
``validate_coreml`` checks what the file declares (inputs, outputs, labels, op types,
weight dtypes) everywhere and compares predictions with PyTorch only on macOS.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConversionError, EdgeResNetError, VerificationError
from ..manifest import artifact_sha256
from ..model import Model
from ..preprocess import Preprocess

INPUT_NAME = "input"  # tensor input: NCHW float32, already normalised
IMAGE_INPUT_NAME = "image"  # image input: an RGB (or BGR) picture of input_size x input_size
OUTPUT_NAME = "logits"
PROBABILITIES_NAME = "probabilities"  # image input without labels: softmax output
CLASS_LABEL_NAME = "classLabel"  # image input with labels: Core ML classifier outputs
PRECISIONS = ("fp16", "int8w")

# Deployment targets: an fp16 ML Program runs from iOS 15 / macOS 12; int8 weights
# (constexpr_affine_dequantize) need iOS 16 / macOS 13.
_TARGETS = {"fp16": "iOS15", "int8w": "iOS16"}
# Names of coremltools' metadata entries; the conversion date is removed so that two
# exports of the same model are byte-identical.
_DATE_KEY = "com.github.apple.coremltools.conversion_date"
_META_PREFIX = "edgeresnet."

# MIL tensor data types -> the short names the manifest uses.
_DTYPES = {
    "FLOAT16": "fp16", "FLOAT32": "fp32", "FLOAT64": "fp64", "BFLOAT16": "bf16",
    "INT4": "int4", "UINT4": "uint4", "INT8": "int8", "UINT8": "uint8",
    "INT16": "int16", "UINT16": "uint16", "INT32": "int32", "UINT32": "uint32",
    "INT64": "int64", "UINT1": "uint1", "UINT2": "uint2", "UINT3": "uint3", "UINT6": "uint6",
    "BOOL": "bool", "STRING": "string",
}
# Inputs of the compression ops that carry the compressed weight itself (the others are
# scales, zero points, offsets, masks: quantization parameters, not weights).
_COMPRESSED_DATA = {"quantized_data", "data", "indices", "nonzero_data", "lut"}
_QUANT_PARAMS = {"scale", "zero_point", "offset", "mask", "shape"}


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
        raise EdgeResNetError(f"a Core ML ML Program is a .mlpackage directory, not {output.name!r}",
                              "name the output <model>.mlpackage")
    ct = import_coremltools()
    preprocess = model.preprocess

    module = model.copy_module().eval()  # never trace or mutate the caller's module
    if image_input:
        module, scale, bias = _image_wrapper(module, preprocess)
        inputs = [ct.ImageType(
            name=IMAGE_INPUT_NAME, shape=model.input_shape, scale=scale, bias=bias,
            color_layout=ct.colorlayout.RGB if preprocess.channel_order == "RGB" else ct.colorlayout.BGR,
            channel_first=True,
        )]
        classifier = ct.ClassifierConfig(list(model.labels)) if model.labels else None
        # A classifier's outputs are named by ClassifierConfig; naming the tensor it reads
        # would only rename the dict (to "<name>" instead of "classLabel_probs").
        outputs = None if classifier else [ct.TensorType(name=PROBABILITIES_NAME, dtype=np.float32)]
    else:
        inputs = [ct.TensorType(name=INPUT_NAME, shape=model.input_shape, dtype=np.float32)]
        outputs = [ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)]
        classifier = None

    with _converter_quiet(), _conversion_errors(f"Core ML {precision} conversion of {model.arch}"):
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

    with _converter_quiet(), _conversion_errors("saving the Core ML package"):
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
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0,
    )
    return cto.linear_quantize_weights(mlmodel, config=cto.OptimizationConfig(global_config=op_config))


def _set_metadata(mlmodel, model: Model, precision: str, image_input: bool) -> None:
    from .. import __version__

    p = model.preprocess
    norm = f"mean {list(p.mean)} std {list(p.std)}"
    if image_input:
        what = (f"{p.channel_order} {p.input_size}x{p.input_size} image in (normalised inside: {norm}); "
                f"class probabilities out")
    else:
        what = (f"{p.channel_order} NCHW float32 (1,3,{p.input_size},{p.input_size}) in, already "
                f"normalised as (x/255 - mean)/std with {norm}; logits out")
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
    meta[_META_PREFIX + "source_sha256"] = model.fingerprint()
    if image_input:
        mlmodel.input_description[IMAGE_INPUT_NAME] = (
            f"{p.channel_order} image, {p.input_size}x{p.input_size} (resize/crop it first)")
    else:
        mlmodel.input_description[INPUT_NAME] = f"normalised NCHW float32 image batch (1,3,{p.input_size},{p.input_size})"
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


# --------------------------------------------------------------------------- coremltools plumbing


def import_coremltools():
    """coremltools, imported without its TensorFlow probe and start-up chatter.

    On import coremltools tries ``import tensorflow`` to enable its TF converter; here
    TensorFlow is often installed (for TFLite), which costs ~6 s and a screen of CUDA
    logs for a frontend we never use. Hiding it for the duration of the import disables
    only coremltools' TF frontend. On Linux it also warns that it cannot load its
    macOS-only runtime, and that the torch version is newer than it was tested with.
    """
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    import importlib.util

    if importlib.util.find_spec("coremltools") is None:
        raise EdgeResNetError("Core ML export needs coremltools, which is not installed",
                              'install the extra: pip install "edgeresnet[coreml]"')
    hide_tf = "tensorflow" not in sys.modules
    if hide_tf:
        sys.modules["tensorflow"] = None  # makes `import tensorflow` raise ImportError
    try:
        with _converter_quiet():
            import coremltools
    finally:
        if hide_tf and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    return coremltools


@contextlib.contextmanager
def _converter_quiet():
    """Silence coremltools' progress bars (stderr), warnings and info logs; errors still raise."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


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
                        f" in module '{module}'" if module else " in the top-level forward")
                elif op is not None and hasattr(op, "op_type") and hasattr(op, "name"):
                    mil_at = f"MIL op '{op.op_type}' ('{op.name}')"
            except Exception:  # the location is a courtesy; never hide the real error
                pass
        tb = tb.tb_next
    # The torch module path is what the user can act on; the MIL op adds detail.
    if torch_at and mil_at:
        return f"{torch_at} ({mil_at})"
    return torch_at or mil_at


# --------------------------------------------------------------------------- inspection


def inspect_coreml(path: Path) -> dict[str, Any]:
    """What a .mlpackage declares, read from its spec without loading (or compiling) it.

    Returns inputs, outputs, classifier labels, MIL op types of ``main``, the dtypes of the
    stored weights (``weight_dtypes``; ``kernel_dtypes`` for conv/linear kernels only,
    rank >= 2), how int8 weights are scaled, and the dtypes of quantized activations.
    """
    path = Path(path)
    if not (path / "Manifest.json").is_file():
        raise EdgeResNetError(f"{path} is not a Core ML package (no Manifest.json)",
                              "point at a .mlpackage directory written by the Core ML export")
    ct = import_coremltools()
    try:
        with _converter_quiet():
            mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
            spec = mlmodel.get_spec()
    except Exception as exc:
        raise VerificationError(f"{path} cannot be read as a Core ML model ({' '.join(str(exc).split())[:300]})",
                                "re-export it") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise VerificationError(f"{path.name} is a Core ML {spec.WhichOneof('Type')} model, not an ML Program",
                                "re-export it with edgeresnet")
    functions = spec.mlProgram.functions
    if "main" not in functions:
        raise VerificationError(f"{path.name} has no 'main' function", "re-export it")
    main = functions["main"]
    block = main.block_specializations[main.opset]
    description = spec.description

    inputs = [_feature(feature) for feature in description.input]
    outputs = [_feature(feature) for feature in description.output]
    classifier = bool(description.predictedFeatureName)
    ops = list(block.operations)
    weights = _weights(ops)
    meta = dict(spec.description.metadata.userDefined)
    return {
        "path": str(path),
        "spec_version": spec.specificationVersion,
        "opset": main.opset,  # CoreML5 = iOS15, CoreML6 = iOS16, ...
        "inputs": inputs,
        "outputs": outputs,
        "classifier": classifier,
        "labels": _class_labels(ops) if classifier else None,
        "predicted_feature": description.predictedFeatureName or None,
        "probabilities_output": description.predictedProbabilitiesName or None,
        "op_types": sorted({op.type for op in ops}),
        "weight_dtypes": sorted({w["dtype"] for w in weights}),
        "kernel_dtypes": sorted({w["dtype"] for w in weights if w["rank"] >= 2}),
        "weights": {dtype: sum(1 for w in weights if w["dtype"] == dtype) for dtype in sorted({w["dtype"] for w in weights})},
        "int8_granularity": _granularity(ops),
        # Integer activations (w8a8): the dtypes that ``quantize`` ops produce; [] for fp16 activations.
        "activation_dtypes": sorted({_dtype(o.type)[0] for op in ops if op.type == "quantize"
                                     for o in op.outputs if _dtype(o.type)}),
        "author": description.metadata.author,
        "short_description": description.metadata.shortDescription,
        "metadata": {k[len(_META_PREFIX):]: v for k, v in meta.items() if k.startswith(_META_PREFIX)},
        "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    }


def _feature(feature) -> dict[str, Any]:
    kind = feature.type.WhichOneof("Type")
    info: dict[str, Any] = {"name": feature.name}
    if kind == "imageType":
        image = feature.type.imageType
        info.update(type="image", shape=[int(image.height), int(image.width)],
                    color_layout=type(image).ColorSpace.Name(image.colorSpace))
    elif kind == "multiArrayType":
        array = feature.type.multiArrayType
        info.update(type="multiArray", shape=[int(d) for d in array.shape],
                    dtype=type(array).ArrayDataType.Name(array.dataType).lower())
    elif kind == "dictionaryType":
        info.update(type="dictionary", key=feature.type.dictionaryType.WhichOneof("KeyType"))
    elif kind == "stringType":
        info.update(type="string")
    elif kind == "int64Type":
        info.update(type="int64")
    else:
        info.update(type=kind or "unknown")
    return info


def _dtype(value_type) -> tuple[str, int] | None:
    """(short dtype, rank) of a MIL ValueType that is a tensor."""
    if value_type.WhichOneof("type") != "tensorType":
        return None
    from coremltools.proto import MIL_pb2

    tensor = value_type.tensorType
    name = MIL_pb2.DataType.Name(tensor.dataType)
    return _DTYPES.get(name, name.lower()), int(tensor.rank)


def _weights(ops) -> list[dict[str, Any]]:
    """Every stored weight: const values in the weight file and compressed data of constexpr ops.

    Quantization parameters (scales, zero points, offsets) are left out: an int8 kernel's
    fp16 scales do not make it an fp16 weight. Inline (immediate) constants are small
    hyper-parameters such as strides and pads, not weights.
    """
    params = set()  # names of consts that feed a constexpr op's scale/zero-point/offset
    for op in ops:
        if op.type.startswith("constexpr_"):
            for name, argument in op.inputs.items():
                if name in _QUANT_PARAMS:
                    params.update(binding.name for binding in argument.arguments if binding.name)
    found = []
    for op in ops:
        if op.type == "const":
            value = op.attributes.get("val")
            if value is None or value.WhichOneof("value") != "blobFileValue" or op.outputs[0].name in params:
                continue
            typed = _dtype(value.type)
        elif op.type.startswith("constexpr_"):
            typed = None
            for name in _COMPRESSED_DATA:
                if name in op.attributes:  # iOS16 constexpr ops keep their data as attributes
                    typed = _dtype(op.attributes[name].type)
                    break
            if typed is None:  # iOS18 ones take it from a const op, already counted
                continue
        else:
            continue
        if typed:
            found.append({"name": op.outputs[0].name if op.outputs else "", "dtype": typed[0], "rank": typed[1]})
    return found


def _granularity(ops) -> str | None:
    """'per_channel', 'per_tensor' or 'mixed' for int8 weight quantization; None without it."""
    kinds = set()
    for op in ops:
        if op.type == "constexpr_affine_dequantize":
            scale, data = op.attributes.get("scale"), op.attributes.get("quantized_data")
            if scale is None or data is None:
                continue
            per_channel = _dtype(scale.type)[1] == 1 and _numel(scale.type) > 1
            kinds.add("per_channel" if per_channel else "per_tensor")
        elif op.type == "constexpr_blockwise_shift_scale":
            kinds.add("blockwise")
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _numel(value_type) -> int:
    dims = value_type.tensorType.dimensions
    return int(np.prod([d.constant.size for d in dims])) if dims else 1


def _class_labels(ops) -> list[str] | None:
    """The labels of the ``classify`` op Core ML classifiers end with."""
    consts = {op.outputs[0].name: op for op in ops if op.type == "const" and op.outputs}
    for op in ops:
        if op.type != "classify" or "classes" not in op.inputs:
            continue
        for binding in op.inputs["classes"].arguments:
            # The classes are an inline list of scalars (coremltools 9); older files may
            # name a const op instead.
            if binding.WhichOneof("binding") == "value":
                value = binding.value
            else:
                const = consts.get(binding.name)
                value = const.attributes.get("val") if const is not None else None
            if value is None or value.WhichOneof("value") != "immediateValue":
                continue
            immediate = value.immediateValue
            if immediate.WhichOneof("value") == "list":
                return [_scalar(item.immediateValue.tensor) for item in immediate.list.values]
            if immediate.WhichOneof("value") == "tensor":
                tensor = immediate.tensor
                kind = tensor.WhichOneof("value")
                if kind == "strings":
                    return list(tensor.strings.values)
                if kind in ("ints", "longInts"):
                    return [str(v) for v in getattr(tensor, kind).values]
    return None


def _scalar(tensor) -> str:
    kind = tensor.WhichOneof("value")
    values = list(getattr(tensor, kind).values) if kind else []
    return str(values[0]) if values else ""


# --------------------------------------------------------------------------- validation


def validate_coreml(
    path: Path,
    *,
    precision: str,
    image_input: bool,
    labels: tuple[str, ...] | list[str] | None,
    input_size: int,
    model: Model | None = None,
    samples: np.ndarray | None = None,
) -> dict[str, Any]:
    """Check the package at `path` is what was asked for; return a description for a manifest.

    Raises VerificationError on the first mismatch. On macOS, given the source `model` and
    `samples` (NCHW float32, normalised), it also runs the package and compares it with
    PyTorch; elsewhere ``runtime_check`` is ``"needs macOS"``.
    """
    info = inspect_coreml(path)
    name = Path(path).name
    labels = list(labels) if labels else None

    def fail(what: str, hint: str = "re-export with the same options") -> None:
        raise VerificationError(f"{name}: {what}", hint)

    # Weights.
    kernels = set(info["kernel_dtypes"])
    if precision == "fp16":
        if kernels != {"fp16"}:
            fail(f"expected fp16 weights, found {sorted(kernels) or 'none'}")
    elif precision == "int8w":
        if kernels != {"int8"}:
            fail(f"expected int8 conv/linear weights, found {sorted(kernels) or 'none'}")
        if info["int8_granularity"] not in ("per_channel", "blockwise"):
            fail(f"expected per-channel int8 weights, found {info['int8_granularity']}")
    else:
        raise EdgeResNetError(f"unknown Core ML precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    if info["activation_dtypes"]:
        fail(f"expected fp16 activations, found {info['activation_dtypes']} ones")

    # Input.
    if len(info["inputs"]) != 1:
        fail(f"expected one input, found {len(info['inputs'])}")
    given = info["inputs"][0]
    if image_input:
        if given["type"] != "image":
            fail(f"expected an image input, found a {given['type']} input {given['name']!r}")
        if given["shape"] != [input_size, input_size]:
            fail(f"expected a {input_size}x{input_size} image, found {given['shape'][1]}x{given['shape'][0]}")
        if given["color_layout"] not in ("RGB", "BGR"):
            fail(f"expected an RGB or BGR image, found {given['color_layout']}")
    else:
        if given["type"] != "multiArray":
            fail(f"expected a tensor input, found an {given['type']} input {given['name']!r}")
        if given["shape"] != [1, 3, input_size, input_size] or given.get("dtype") != "float32":
            fail(f"expected a float32 (1,3,{input_size},{input_size}) input, found {given.get('dtype')} {given['shape']}")

    # Output and labels.
    outputs = {o["name"]: o for o in info["outputs"]}
    if image_input and labels:
        if not info["classifier"]:
            fail("expected a classifier with labels, found a plain model", "export with the model's labels set")
        if info["labels"] != labels:
            fail(f"expected labels {labels}, found {info['labels']}")
    elif info["classifier"]:
        fail(f"expected no classifier, found one with labels {info['labels']}")
    else:
        expected = PROBABILITIES_NAME if image_input else OUTPUT_NAME
        if expected not in outputs or outputs[expected]["type"] != "multiArray":
            fail(f"expected a {expected!r} tensor output, found {sorted(outputs)}")
        stored = json.loads(info["metadata"].get("labels", "null"))
        if labels and stored != labels:
            fail(f"expected labels {labels} in the metadata, found {stored}")

    result: dict[str, Any] = {
        "format": "mlpackage",
        "precision": precision,
        "opset": info["opset"],
        "input": _input_spec(given),
        "outputs": info["outputs"],
        "classifier": info["classifier"],
        "labels": info["labels"] if info["classifier"] else labels,
        "weight_dtypes": info["weight_dtypes"],
        "int8_granularity": info["int8_granularity"],
        "op_types": info["op_types"],
        "size_bytes": info["size_bytes"],
        "sha256": artifact_sha256(Path(path)),  # as the manifest hashes a package: names and contents
    }
    if platform.system() != "Darwin":
        result["runtime_check"] = "needs macOS"
    elif model is None or samples is None or len(samples) == 0:
        result["runtime_check"] = "skipped: no model or samples given"
    else:
        result["fidelity"] = _run_on_macos(Path(path), model, samples, precision, image_input, info)
        result["runtime_check"] = "passed"
    return result


def _input_spec(feature: dict[str, Any]) -> dict[str, Any]:
    """The input as manifest.TensorSpec fields (an image is described as its NHWC uint8 pixels)."""
    if feature["type"] == "image":
        height, width = feature["shape"]
        return {"name": feature["name"], "shape": [1, height, width, 3], "dtype": "uint8",
                "layout": f"NHWC ({feature['color_layout']} image)"}
    return {"name": feature["name"], "shape": feature["shape"], "dtype": feature.get("dtype", "float32"),
            "layout": "NCHW"}


def _run_on_macos(path: Path, model: Model, samples: np.ndarray, precision: str, image_input: bool,
                  info: dict[str, Any]):
    """Predict each sample with Core ML and compare top-1 with PyTorch (macOS only)."""
    from .verify import check_fidelity

    ct = import_coremltools()
    try:
        with _converter_quiet():
            mlmodel = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    except Exception as exc:
        raise VerificationError(f"Core ML cannot load {path.name}: {' '.join(str(exc).split())[:300]}",
                                "re-export it; check the macOS version supports its opset") from None
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    module = model.copy_module().eval()  # leave the caller's module in its own mode
    if image_input:
        pixels = _to_pixels(samples, model.preprocess)  # what a camera would give: uint8 NHWC, model channel order
        renormalised = _normalise(pixels, model.preprocess)
        with torch.inference_mode():
            reference = torch.softmax(module(torch.from_numpy(renormalised)), dim=1).numpy()
        from PIL import Image

        rgb = pixels if model.preprocess.channel_order == "RGB" else pixels[..., ::-1]
        candidate = []
        for image in rgb:
            out = mlmodel.predict({IMAGE_INPUT_NAME: Image.fromarray(np.ascontiguousarray(image), "RGB")})
            if info["classifier"]:
                probs = out[info["probabilities_output"]]
                candidate.append([probs[label] for label in info["labels"]])
            else:
                candidate.append(np.asarray(out[PROBABILITIES_NAME]).reshape(-1))
        candidate = np.asarray(candidate, dtype=np.float32)
    else:
        with torch.inference_mode():
            reference = module(torch.from_numpy(samples)).numpy()
        candidate = np.concatenate(
            [np.asarray(mlmodel.predict({INPUT_NAME: s[None]})[OUTPUT_NAME], dtype=np.float32).reshape(1, -1)
             for s in samples])
    # int8 weights with fp16 activations: held to the int8 bar, which is what they are measured against.
    return check_fidelity(reference, candidate, "fp16" if precision == "fp16" else "int8",
                          name=path.name).model_dump()


def _to_pixels(batch: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Normalised NCHW float32 -> uint8 NHWC pixels (channels in the model's order)."""
    mean = np.asarray(preprocess.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess.std, dtype=np.float32).reshape(1, 3, 1, 1)
    pixels = np.clip(np.rint((batch * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return pixels.transpose(0, 2, 3, 1)


def _normalise(pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    mean = np.asarray(preprocess.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - mean) / std)
