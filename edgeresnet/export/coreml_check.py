"""What a Core ML package declares, checked against what was asked for; run on macOS only.

Linux can read a package but cannot run one, so ``validate_coreml`` checks its inputs,
outputs, labels, op types and weight dtypes everywhere, and compares its predictions
with PyTorch only on macOS.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import normalize
from ..errors import EdgeResNetError, VerificationError
from ..model import Model
from .coreml import (
    _META_PREFIX,
    IMAGE_INPUT_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    PRECISIONS,
    PROBABILITIES_NAME,
    _converter_quiet,
    import_coremltools,
)

# MIL tensor data types -> the short names the manifest uses.
_DTYPES = {
    "FLOAT16": "fp16",
    "FLOAT32": "fp32",
    "FLOAT64": "fp64",
    "BFLOAT16": "bf16",
    "INT4": "int4",
    "UINT4": "uint4",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT16": "int16",
    "UINT16": "uint16",
    "INT32": "int32",
    "UINT32": "uint32",
    "INT64": "int64",
    "UINT1": "uint1",
    "UINT2": "uint2",
    "UINT3": "uint3",
    "UINT6": "uint6",
    "BOOL": "bool",
    "STRING": "string",
}
# Inputs of the compression ops that carry the compressed weight itself (the others are
# scales, zero points, offsets, masks: quantization parameters, not weights).
_COMPRESSED_DATA = {"quantized_data", "data", "indices", "nonzero_data", "lut"}
_QUANT_PARAMS = {"scale", "zero_point", "offset", "mask", "shape"}


# --------------------------------------------------------------------------- inspection


def inspect_coreml(path: Path) -> dict[str, Any]:
    """What a .mlpackage declares, read from its spec without loading (or compiling) it.

    Returns inputs, outputs, classifier labels, MIL op types of ``main``, the dtypes of the
    stored weights (``weight_dtypes``; ``kernel_dtypes`` for conv/linear kernels only,
    rank >= 2), how int8 weights are scaled, and the dtypes of quantized activations.
    """
    path = Path(path)
    if not (path / "Manifest.json").is_file():
        raise EdgeResNetError(
            f"{path} is not a Core ML package (no Manifest.json)",
            "point at a .mlpackage directory written by the Core ML export",
        )
    ct = import_coremltools()
    try:
        with _converter_quiet():
            mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
            spec = mlmodel.get_spec()
    except Exception as exc:
        raise VerificationError(
            f"{path} cannot be read as a Core ML model ({' '.join(str(exc).split())[:300]})", "re-export it"
        ) from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise VerificationError(
            f"{path.name} is a Core ML {spec.WhichOneof('Type')} model, not an ML Program",
            "re-export it with edgeresnet",
        )
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
        "weights": {
            dtype: sum(1 for w in weights if w["dtype"] == dtype) for dtype in sorted({w["dtype"] for w in weights})
        },
        "int8_granularity": _granularity(ops),
        # Integer activations (w8a8): the dtypes that ``quantize`` ops produce; [] for fp16 activations.
        "activation_dtypes": sorted(
            {_dtype(o.type)[0] for op in ops if op.type == "quantize" for o in op.outputs if _dtype(o.type)}
        ),
        "author": description.metadata.author,
        "short_description": description.metadata.shortDescription,
        "metadata": {k[len(_META_PREFIX) :]: v for k, v in meta.items() if k.startswith(_META_PREFIX)},
        "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    }


def _feature(feature) -> dict[str, Any]:
    kind = feature.type.WhichOneof("Type")
    info: dict[str, Any] = {"name": feature.name}
    if kind == "imageType":
        image = feature.type.imageType
        info.update(
            type="image",
            shape=[int(image.height), int(image.width)],
            color_layout=type(image).ColorSpace.Name(image.colorSpace),
        )
    elif kind == "multiArrayType":
        array = feature.type.multiArrayType
        info.update(
            type="multiArray",
            shape=[int(d) for d in array.shape],
            dtype=type(array).ArrayDataType.Name(array.dataType).lower(),
        )
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
    channels: int = 3,
) -> dict[str, Any]:
    """Check the package at `path` is what was asked for; return a description for a manifest.

    Raises VerificationError on the first mismatch. On macOS, given the source `model` and
    `samples` (uint8 NHWC RGB pixels), it also runs the package and compares it with
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
    elif precision in ("int8w", "w8a8"):
        if kernels != {"int8"}:
            fail(f"expected int8 conv/linear weights, found {sorted(kernels) or 'none'}")
        if info["int8_granularity"] not in ("per_channel", "blockwise"):
            fail(f"expected per-channel int8 weights, found {info['int8_granularity']}")
    else:
        raise EdgeResNetError(f"unknown Core ML precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    if precision == "w8a8":
        if not info["activation_dtypes"] or not set(info["activation_dtypes"]) <= {"int8", "uint8"}:
            fail(f"expected 8-bit activations, found {info['activation_dtypes'] or 'fp16 ones'}")
    elif info["activation_dtypes"]:
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
        if given["shape"] != [1, channels, input_size, input_size] or given.get("dtype") != "float32":
            fail(
                f"expected a float32 (1,{channels},{input_size},{input_size}) input, "
                f"found {given.get('dtype')} {given['shape']}"
            )

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
        "output": _output_spec(info, image_input, len(labels) if labels else model.num_classes if model else None),
        "outputs": info["outputs"],
        "classifier": info["classifier"],
        "labels": info["labels"] if info["classifier"] else labels,
        "weight_dtypes": info["weight_dtypes"],
        "int8_granularity": info["int8_granularity"],
        "activation_dtypes": info["activation_dtypes"],
        "op_types": info["op_types"],
        "size_bytes": info["size_bytes"],
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
        return {
            "name": feature["name"],
            "shape": [1, height, width, 3],
            "dtype": "uint8",
            "layout": f"NHWC ({feature['color_layout']} image)",
        }
    return {
        "name": feature["name"],
        "shape": feature["shape"],
        "dtype": feature.get("dtype", "float32"),
        "layout": "NCHW",
    }


def _output_spec(info: dict[str, Any], image_input: bool, classes: int | None) -> dict[str, Any]:
    """The scores output as manifest.TensorSpec fields (a classifier's is a label -> probability map)."""
    shape = [1, classes] if classes else []
    if info["classifier"]:
        return {"name": info["probabilities_output"], "shape": shape[1:], "dtype": "dictionary(string: double)"}
    return {"name": PROBABILITIES_NAME if image_input else OUTPUT_NAME, "shape": shape, "dtype": "float32"}


def _run_on_macos(
    path: Path, model: Model, samples: np.ndarray, precision: str, image_input: bool, info: dict[str, Any]
):
    """Predict each sample (uint8 NHWC RGB) with Core ML and compare top-1 with PyTorch (macOS only)."""
    from .verify import check_fidelity

    ct = import_coremltools()
    try:
        with _converter_quiet():
            mlmodel = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    except Exception as exc:
        raise VerificationError(
            f"Core ML cannot load {path.name}: {' '.join(str(exc).split())[:300]}",
            "re-export it; check the macOS version supports its opset",
        ) from None
    module = model.copy_module().eval()  # leave the caller's module in its own mode
    tensors = normalize(samples, model.preprocess)
    with torch.inference_mode():
        logits = module(torch.from_numpy(tensors)).numpy()
    reference = logits
    if image_input:
        from PIL import Image

        reference = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        candidate = []
        for image in samples:  # RGB, as a camera gives it: the package's color_layout handles BGR models
            out = mlmodel.predict({IMAGE_INPUT_NAME: Image.fromarray(np.ascontiguousarray(image), "RGB")})
            if info["classifier"]:
                probs = out[info["probabilities_output"]]
                candidate.append([probs[label] for label in info["labels"]])
            else:
                candidate.append(np.asarray(out[PROBABILITIES_NAME]).reshape(-1))
        candidate = np.asarray(candidate, dtype=np.float32)
    else:
        candidate = np.concatenate(
            [
                np.asarray(mlmodel.predict({INPUT_NAME: s[None]})[OUTPUT_NAME], dtype=np.float32).reshape(1, -1)
                for s in tensors
            ]
        )
    # int8 weights with fp16 activations: held to the int8 bar, which is what they are measured against.
    return check_fidelity(
        reference, candidate, "fp16" if precision == "fp16" else "int8", name=path.name, reference_logits=logits
    ).model_dump()
