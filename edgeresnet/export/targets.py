"""The export targets `--target` accepts, and how a list of them is parsed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import EdgeResNetError, TargetError, closest


@dataclass(frozen=True)
class Target:
    name: str  # what the user types, e.g. "tflite-int8"
    runtime: str  # "tflite", "openvino", "coreml", "onnx" or "tensorrt"; the runner picks its runtime by this
    precision: str  # "fp32", "fp16", "int8" / "w8a8" (int8 weights and activations) or "int8w" (weights only)
    suffix: str  # file extension of the artifact
    description: str = ""  # one line for `edgeresnet targets`
    # The quantization-aware training scheme (stages/qat.py, quantization/<scheme>.py) that
    # simulates this target's int8 arithmetic; None for the targets no scheme simulates.
    qat_scheme: str | None = None
    # Whether --image-input applies: the plain ONNX intermediate and TensorRT's ONNX take tensors.
    takes_images: bool = True

    @property
    def needs_calibration(self) -> bool:
        return self.precision in ("int8", "w8a8")


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "onnx", "onnx", "fp32", ".onnx", "float32 ONNX, the intermediate every converter reads", takes_images=False
        ),
        Target("tflite-fp32", "tflite", "fp32", ".tflite", "TFLite float32 (LiteRT, Android)"),
        Target("tflite-fp16", "tflite", "fp16", ".tflite", "TFLite with float16 weights"),
        Target(
            "tflite-int8",
            "tflite",
            "int8",
            ".tflite",
            "TFLite full integer: int8 weights and activations",
            qat_scheme="tflite",
        ),
        Target("openvino-fp32", "openvino", "fp32", ".xml", "OpenVINO IR, float32 weights"),
        Target("openvino-fp16", "openvino", "fp16", ".xml", "OpenVINO IR, float16 weights"),
        Target(
            "openvino-int8",
            "openvino",
            "int8",
            ".xml",
            "OpenVINO IR, int8 weights and activations",
            qat_scheme="openvino",
        ),
        Target("coreml-fp16", "coreml", "fp16", ".mlpackage", "Core ML program, float16 (iOS 15+)"),
        Target("coreml-int8w", "coreml", "int8w", ".mlpackage", "Core ML program, int8 weights (iOS 16+)"),
        Target(
            "coreml-w8a8",
            "coreml",
            "w8a8",
            ".mlpackage",
            "Core ML program, int8 weights and activations (iOS 17+)",
            qat_scheme="coreml",
        ),
        # The ONNX a TensorRT engine is built from on the device (a Jetson): export/tensorrt/.
        Target(
            "tensorrt-fp16",
            "tensorrt",
            "fp16",
            ".onnx",
            "ONNX for a float16 TensorRT engine, built on the device",
            takes_images=False,
        ),
        Target(
            "tensorrt-int8",
            "tensorrt",
            "int8",
            ".onnx",
            "ONNX with int8 Q/DQ for a TensorRT engine, built on the device",
            takes_images=False,
        ),
    )
}
# The int8 target whose arithmetic each quantization-aware training scheme simulates.
QAT_TARGETS: dict[str, str] = {t.qat_scheme: t.name for t in TARGETS.values() if t.qat_scheme}


def parse_targets(values: Iterable[str]) -> list[Target]:
    """'tflite-int8,onnx' or repeated flags -> targets in the order given, once each.

    Args:
        values: target names, each one name or several joined by commas (case-insensitive). A
            list of strings: a bare string would be read one character at a time.

    Raises TargetError for an unknown name (suggesting the closest) or when none is given.

    Example::

        targets = edgeresnet.parse_targets(["tflite-int8,onnx", "openvino-int8"])
        print([(t.name, t.runtime, t.precision) for t in targets])
    """
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        raise TargetError("no export target given", "pass --target, e.g. --target tflite-int8")
    targets: list[Target] = []
    for name in names:
        target = TARGETS.get(name.lower())
        if target is None:
            raise TargetError(f"unknown target {name!r}", closest(name.lower(), TARGETS))
        if target not in targets:
            targets.append(target)
    return targets


def check_calibration_source(targets: list[Target], has_train_data: bool) -> None:
    """Without --data, an int8 target still needs calibration images: from --train-data, or an error."""
    int8 = [t.name for t in targets if t.needs_calibration]
    if int8 and not has_train_data:
        raise EdgeResNetError(
            f"{', '.join(int8)} needs calibration images, and no --data is given",
            "pass --data (or --train-data) with a folder, .zip or .npz of images, labelled or not",
        )
