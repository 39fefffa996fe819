"""manifest.json: what an artifact is, how to feed it, and what it was measured to do.

Written beside every exported file and read by the runner (so this module imports
neither torch nor TensorFlow). An app developer reads it to know the input layout,
dtype, quantization and preprocessing; the runner reads it to check the file's sha256
and to compute the accuracy delta against the recorded baseline.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import EdgeResNetError
from .rundir import write_atomically

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    shape: list[int]
    dtype: str
    layout: str | None = None  # "NHWC" or "NCHW" for image inputs
    scale: float | None = None  # set when the tensor is quantized: real = scale * (q - zero_point)
    zero_point: int | None = None


class AccuracySpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    top1: float | None  # None: measured on unlabelled images (predictions, no accuracy)
    top5: float | None
    samples: int
    data: str


class Fidelity(BaseModel):
    """How closely the artifact follows the PyTorch model on the same images."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    samples: int
    agreement: float  # percent of equal top-1 predictions
    near_ties: int = 0  # flips where PyTorch's own two logits were within rounding of each other
    max_abs_diff: float  # largest output difference (logits; probabilities for an image-input file)
    threshold: float  # the agreement the export required (0: measured, not enforced)
    # What the file was compared with: "pytorch-fp32" (the float model), "tflite-int8 simulation"
    # (the PyTorch simulator of its runtime's integer arithmetic with its parameters), "... qat model".
    reference: str = "pytorch-fp32"


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: int = SCHEMA_VERSION
    target: str
    runtime: str
    precision: str
    file: str  # what to load: a .tflite, .onnx, OpenVINO .xml or CoreML .mlpackage
    sha256: str  # of `file`; for a directory (.mlpackage), of its files' names and contents
    size_bytes: int  # of every file in `files`
    files: dict[str, str]  # every file the artifact consists of (an IR's .xml and .bin) -> sha256
    input: TensorSpec
    output: TensorSpec
    # True: the file takes a uint8 RGB image of the input size, normalises it itself and
    # returns class probabilities (built with --image-input, for apps). False: it takes
    # the normalised tensor `preprocessing` describes and returns logits.
    image_input: bool = False
    preprocessing: dict[str, Any]
    labels: list[str] | None
    source_model: dict[str, Any]
    baseline: AccuracySpec | None = None  # the FP32 PyTorch model on the evaluation data
    accuracy: AccuracySpec | None = None  # this artifact on the same data
    # The images the file was verified, evaluated and timed on: name, source, samples, fingerprint,
    # labelled (false: accuracy is null), and embedded (true: no --data, the embedded sample images).
    data: dict[str, Any] | None = None
    fidelity: Fidelity | None = None  # None where no runtime for the file exists on the exporting host
    # For an int8 file checked against its simulator: its agreement with the float model (reported).
    fidelity_fp32: Fidelity | None = None
    # How an int8 file's parameters were chosen: {"method": "ptq" | "qat" | "converter", ...settings}.
    quantization: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None  # checks of the file's own spec (CoreML: inputs, ops, weight dtypes)
    tools: dict[str, str]
    # Set when the run that wrote this file lost more accuracy than its --max-accuracy-drop
    # allowed: the file is kept for inspection, not for shipping.
    failed: str | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_files(path: Path) -> list[Path]:
    """The files an artifact consists of: itself, an IR's weights, a package's contents."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    weights = path.with_suffix(".bin")
    return [path, weights] if path.suffix == ".xml" and weights.exists() else [path]


def file_hashes(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path.parent)): sha256_file(f) for f in artifact_files(path)}


def artifact_sha256(path: Path, hashes: dict[str, str] | None = None) -> str:
    """sha256 of a file; of a package, over its files' names and hashes (`file_hashes`, if already known)."""
    if not path.is_dir():
        return hashes[path.name] if hashes else sha256_file(path)
    digest = hashlib.sha256()
    for name, sha in sorted((hashes or file_hashes(path)).items()):
        digest.update(f"{name}\t{sha}\n".encode())
    return digest.hexdigest()


def tool_versions(*packages: str) -> dict[str, str]:
    versions = {"edgeresnet": _version("edgeresnet")}
    for package in packages:
        version = _version(package)
        if version != "not installed":
            versions[package] = version
    return versions


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    path = directory / MANIFEST_NAME
    # Atomic: exporting reads a manifest found beside a file (runner.runtimes), and a run stopped
    # while writing one would otherwise leave an empty manifest.json for its resume to read.
    write_atomically(path, manifest.model_dump_json(indent=2) + "\n")
    return path


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise EdgeResNetError(
            f"no manifest at {path}", "point at a directory written by `edgeresnet compress`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise EdgeResNetError(
            f"{path} is not a valid edgeresnet manifest ({first})", "re-export the artifact"
        ) from None


def check_artifact(manifest: Manifest, directory: Path) -> Path:
    """The artifact's path, once every file of it matches the manifest's sha256."""
    directory = Path(directory)
    for name, expected in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise EdgeResNetError(f"{path} is missing", "re-export the artifact")
        if sha256_file(path) != expected:
            raise EdgeResNetError(
                f"{path} does not match the sha256 in its manifest", "the file changed after export: re-export it"
            )
    return directory / manifest.file
