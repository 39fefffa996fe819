"""What a Core ML package declares, read from its spec without loading (or compiling) it.

Linux can read a package but cannot run one: ``inspect_coreml`` reads its inputs,
outputs, labels, MIL op types and weight dtypes, which check.py holds to what was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...backends import converter_quiet, import_coremltools
from ...errors import EdgeResNetError, VerificationError
from .convert import _META_PREFIX

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
        with converter_quiet():
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
            {typed[0] for op in ops if op.type == "quantize" for o in op.outputs if (typed := _dtype(o.type))}
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
    params: set[str] = set()  # names of consts that feed a constexpr op's scale/zero-point/offset
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
            typed = _dtype(scale.type)
            per_channel = typed is not None and typed[1] == 1 and _numel(scale.type) > 1
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
