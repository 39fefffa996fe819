"""What a Core ML package declares, checked against what was asked for; run on macOS only.

Linux can read a package but cannot run one, so ``validate_coreml`` checks its inputs,
outputs, labels, op types and weight dtypes (read by spec.py) everywhere, and compares
its predictions with PyTorch only on macOS.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...backends import converter_quiet, import_coremltools
from ...data import normalize
from ...errors import EdgeResNetError, VerificationError
from ...models.model import Model
from .convert import (
    IMAGE_INPUT_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    PRECISIONS,
    PROBABILITIES_NAME,
)
from .spec import inspect_coreml


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
    from ..verify import check_fidelity

    ct = import_coremltools()
    try:
        with converter_quiet():
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
        rows: list[Any] = []
        for image in samples:  # RGB, as a camera gives it: the package's color_layout handles BGR models
            out = mlmodel.predict({IMAGE_INPUT_NAME: Image.fromarray(np.ascontiguousarray(image), "RGB")})
            if info["classifier"]:
                probs = out[info["probabilities_output"]]
                rows.append([probs[label] for label in info["labels"]])
            else:
                rows.append(np.asarray(out[PROBABILITIES_NAME]).reshape(-1))
        candidate = np.asarray(rows, dtype=np.float32)
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
