"""edgeresnet bench: latency, memory and accuracy of exported files on this machine.

Give it a run directory (every artifact in it) or one artifact (its directory or its
file); each must carry the manifest.json that export wrote, which says how to feed it
and what its PyTorch baseline scored. Each artifact is measured in a process of its own
(runner.measure). Imports neither torch nor TensorFlow: this is what runs on a device.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..data import ImageDataset, batches
from ..errors import EdgeResNetError, first_line
from ..manifest import MANIFEST_NAME, Manifest, check_artifact, read_manifest
from ..preprocess import Preprocess
from .host import host_info

BENCH_SCHEMA_VERSION = 2  # 2: a row whose runtime failed is status "failed", with the reason in note
REFERENCE_NAME = "reference-predictions.npz"  # written by compress beside the run's artifacts

# The package whose version each runtime reports; Core ML is coremltools' on macOS.
RUNTIME_PACKAGES = {
    "tflite": ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu"),
    "openvino": ("openvino",),
    "onnx": ("onnxruntime",),
    "coreml": ("coremltools",),
    "tensorrt": ("tensorrt", "onnxruntime-gpu"),
}


class BenchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    threads: int | None = Field(default=None, ge=1)  # None: every core of the machine it runs on
    runs: int = Field(default=100, ge=1)  # timed inferences, after the warm-up
    warmup: int = Field(default=10, ge=0)
    batch: int = Field(default=1, ge=1)  # images per inference (files are exported with 1)
    device: str = "CPU"  # OpenVINO device: CPU, GPU, NPU
    limit: int | None = Field(default=None, ge=1)  # a seeded subset of the data
    seed: int = 0
    labels: bool = True  # False: the data's labels are ignored (agreement and latency, no accuracy)


class MemoryUse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    before_load_mb: float | None  # resident memory of the measuring process, data mapped
    after_load_mb: float | None
    after_run_mb: float | None  # after the first inference, warm-up and timed runs
    added_by_load_mb: float | None
    added_by_run_mb: float | None
    peak_rss_mb: float  # the process's high-water mark, the accuracy pass over the data included


class BenchAccuracy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    top1: float | None  # None on unlabelled data: agreement with PyTorch FP32 is what is measured
    top5: float | None
    samples: int
    data: str  # fingerprint of the images (edgeresnet.data.ImageDataset.fingerprint)
    baseline_top1: float | None  # the PyTorch FP32 model on the same images, from the manifest
    delta_top1: float | None
    agreement: float | None  # percent of top-1 predictions equal to PyTorch FP32's on the same images


class TargetBench(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    target: str
    file: str
    runtime: str
    precision: str
    image_input: bool
    size_bytes: int
    status: Literal["ok", "skipped", "failed"]
    note: str | None = None  # why it was skipped, why its runtime failed, or which provider ran a TensorRT file
    runtime_version: str | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    latency: dict[str, Any] | None = None  # runner.timing.Latency: p50/p90/p99/mean/std/min in ms
    throughput_ips: float | None = None  # images per second, one inference at a time
    memory: MemoryUse | None = None
    accuracy: BenchAccuracy | None = None


class BenchReport(BaseModel):
    """bench.json: documented in docs/devices.md; bump the version on any change."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: int = BENCH_SCHEMA_VERSION
    kind: Literal["edgeresnet-bench"] = "edgeresnet-bench"
    created: str  # UTC, ISO 8601
    device: str  # "local", or the ssh destination it ran on
    source: str  # the path that was benchmarked
    host: dict[str, Any]
    config: BenchConfig
    data: dict[str, Any] | None
    results: list[TargetBench]


def find_artifacts(path: Path) -> list[tuple[Manifest, Path]]:
    """(manifest, directory) of each artifact at `path`: a run directory, an artifact's directory or
    file; each file's sha256 checked against its manifest."""
    found = locate_artifacts(path)
    for manifest, where in found:
        check_artifact(manifest, where)  # a file changed since export is refused, not measured
    return found


def locate_artifacts(path: Path) -> list[tuple[Manifest, Path]]:
    """``find_artifacts`` without reading the files: which manifests ``path`` holds, or why none."""
    path = Path(path)
    if not path.exists():
        raise EdgeResNetError(
            f"{path} does not exist", "pass a run directory or an artifact written by `edgeresnet export`"
        )
    directory = path if path.is_dir() else path.parent
    if (directory / MANIFEST_NAME).is_file():
        manifest = read_manifest(directory)
        if path.is_file() and path.name not in manifest.files:
            raise EdgeResNetError(
                f"{path} is not the artifact its manifest describes ({manifest.file})", "pass the artifact's directory"
            )
        found = [(manifest, directory)]
    else:
        found = [
            (read_manifest(sub), sub)
            for sub in sorted(directory.iterdir())
            if sub.is_dir() and (sub / MANIFEST_NAME).is_file()
        ]
    if not found:
        raise EdgeResNetError(
            f"no artifact in {path} (no {MANIFEST_NAME})",
            "pass a run directory or an artifact written by `edgeresnet export`",
        )
    return found


def run_directory(path: Path) -> Path:
    """The run a benchmarked path belongs to: where bench-<device>.json goes for `edgeresnet report`."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    return directory.parent if (directory / MANIFEST_NAME).is_file() else directory


def result_name(device: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in device)
    return f"bench-{safe}.json"


def bench(
    path: Path,
    data: ImageDataset | None = None,
    config: BenchConfig = BenchConfig(),
    *,
    device_label: str = "local",
    progress=lambda message: None,
) -> BenchReport:
    """Measure every artifact at `path`; with `data`, also its accuracy against the manifest's baseline
    and its agreement with PyTorch FP32 (unlabelled data, or ``config.labels`` False: agreement only)."""
    artifacts = find_artifacts(path)
    if config.threads is None:
        config = config.model_copy(update={"threads": os.cpu_count() or 1})
    sample: ImageDataset | None = None
    if data is not None:
        data = _as_labelled(data, config, artifacts, progress)
        sample = data.subset(config.limit, config.seed)
        if len(sample) == 0:
            raise EdgeResNetError(f"no images in {data.source}", "pass a data set with images")
    results = []
    with tempfile.TemporaryDirectory(prefix="edgeresnet-bench-") as tmp:
        prepared: dict[str, tuple[Path, Path | None, bool]] = {}
        for manifest, directory in artifacts:
            if (why := cannot_run_here(manifest.runtime)) is not None:
                results.append(_unmeasured(manifest, why))
                continue
            spec = Preprocess(**manifest.preprocessing)
            key = spec.model_dump_json()
            if key not in prepared:
                prepared[key] = _prepare_images(sample, spec, Path(tmp) / f"images{len(prepared)}", config)
            if manifest.failed:  # measured all the same: the user asked for it, and may be looking into why
                progress(f"warning: {manifest.target} failed its run's accuracy guard ({manifest.failed})")
            progress(f"benchmarking {manifest.target}")
            try:
                measured = _measure_in_child(manifest, directory, spec, *prepared[key], config, Path(tmp))
            except EdgeResNetError as error:  # one runtime that cannot load or crashes fails its row only
                progress(f"warning: {error.one_line()}")
                results.append(_unmeasured(manifest, error.one_line().removeprefix(f"{manifest.target}: "), "failed"))
                continue
            results.append(_result(manifest, directory, measured, sample, config))
    failed = [row for row in results if row.status == "failed"]
    if failed and not any(row.status == "ok" for row in results):  # nothing measured: an error, not a report
        raise EdgeResNetError(f"{failed[0].target}: {failed[0].note}")
    return BenchReport(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        device=device_label,
        source=str(path),
        host=host_info(config.threads),
        config=config,
        data=None
        if sample is None
        else {
            "source": sample.source,
            "samples": len(sample),
            "fingerprint": sample.fingerprint(),
            "labelled": sample.labelled,
        },
        results=results,
    )


def _as_labelled(data: ImageDataset, config: BenchConfig, artifacts, progress) -> ImageDataset:
    """The data as the artifacts read it: without labels when asked, or when it is one folder of
    images and the files predict several classes (as compress reads such data)."""
    if not config.labels:
        return data.unlabelled()
    outputs = max((manifest.output.shape[-1] for manifest, _ in artifacts if manifest.output.shape), default=1)
    if data.labelled and len(data.classes) == 1 and outputs > 1:
        progress(
            f"{Path(data.source).name} holds one folder of images ({data.classes[0]}/) and the files predict "
            f"{outputs} classes: reading them as unlabelled images (agreement, no accuracy)"
        )
        return data.unlabelled()
    return data


def _prepare_images(sample: ImageDataset | None, spec: Preprocess, stem: Path, config: BenchConfig):
    """The images as uint8 RGB pixels at the input size (and their labels, for labelled data), for the
    children to map."""
    pixels_path = stem.with_suffix(".pixels.npy")
    if sample is None:  # latency only: a mid-grey image of the right size
        np.save(pixels_path, np.full((config.batch, spec.input_size, spec.input_size, 3), 128, np.uint8))
        return pixels_path, None, False
    chunks, labels = [], []
    for pixels, chunk_labels in batches(sample, spec, 256, layout="NHWC", normalized=False, progress="Loading images"):
        chunks.append(pixels)
        labels.append(chunk_labels)
    np.save(pixels_path, np.concatenate(chunks))
    if not sample.labelled:  # predictions only, for agreement
        return pixels_path, None, True
    labels_path = stem.with_suffix(".labels.npy")
    np.save(labels_path, np.concatenate(labels))
    return pixels_path, labels_path, True


def _measure_in_child(
    manifest: Manifest,
    directory: Path,
    spec: Preprocess,
    pixels: Path,
    labels: Path | None,
    predict: bool,
    config: BenchConfig,
    tmp: Path,
) -> dict:
    job = {
        "artifact": str(directory / manifest.file),
        "image_input": manifest.image_input,
        "preprocess": spec.model_dump(mode="json"),
        "pixels": str(pixels),
        "labels": str(labels) if labels else None,
        "predict": predict,
        "threads": config.threads,
        "device": config.device,
        "batch": config.batch,
        "runs": config.runs,
        "warmup": config.warmup,
    }
    job_path, result_path = tmp / f"{manifest.target}.job.json", tmp / f"{manifest.target}.result.json"
    job_path.write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, "-m", "edgeresnet.runner.measure", str(job_path), str(result_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        errors = [line[len("error: ") :] for line in done.stderr.splitlines() if line.startswith("error: ")]
        reason = (
            errors[-1] if errors else first_line(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
        )
        raise EdgeResNetError(f"{manifest.target}: {reason or f'the measuring process exited with {done.returncode}'}")
    return json.loads(result_path.read_text())


def _result(
    manifest: Manifest, directory: Path, measured: dict, sample: ImageDataset | None, config: BenchConfig
) -> TargetBench:
    accuracy = None
    if sample is not None and measured["predictions"] is not None and not sample.labelled:
        predictions = np.asarray(measured["predictions"])
        fingerprint = sample.fingerprint()
        reference = _reference_predictions(directory.parent, fingerprint)
        accuracy = BenchAccuracy(
            top1=None,
            top5=None,
            samples=len(predictions),
            data=fingerprint,
            baseline_top1=None,
            delta_top1=None,
            agreement=None if reference is None else round(100.0 * float((predictions == reference).mean()), 3),
        )
    elif sample is not None and measured["predictions"] is not None:
        predictions = np.asarray(measured["predictions"])
        labels = sample.labels
        fingerprint = sample.fingerprint()
        top1 = 100.0 * float((predictions == labels).mean())
        baseline = manifest.baseline.top1 if manifest.baseline and manifest.baseline.data == fingerprint else None
        reference = _reference_predictions(directory.parent, fingerprint)
        accuracy = BenchAccuracy(
            top1=top1,
            top5=100.0 * measured["top5_hits"] / len(labels),
            samples=len(labels),
            data=fingerprint,
            baseline_top1=baseline,
            delta_top1=None if baseline is None else round(top1 - baseline, 4),
            agreement=None if reference is None else round(100.0 * float((predictions == reference).mean()), 3),
        )
    return TargetBench(
        **_file_fields(manifest),
        status="ok",
        runtime_version=_runtime_version(manifest.runtime),
        load_ms=measured["load_ms"],
        first_inference_ms=measured["first_inference_ms"],
        latency=measured["latency"],
        throughput_ips=measured["throughput_ips"],
        memory=MemoryUse(**measured["memory"]),
        accuracy=accuracy,
        note=None if measured.get("executed_by") is None else f"run by {measured['executed_by']}",
    )


def cannot_run_here(runtime: str) -> str | None:
    """Why files of ``runtime`` cannot run on this host (they are listed, skipped), or None."""
    if runtime == "coreml" and platform.system() != "Darwin":
        return "Core ML runs only on macOS"
    if runtime == "tensorrt":
        from .tensorrt import unavailable_reason

        return unavailable_reason()
    return None


def _unmeasured(manifest: Manifest, why: str, status: Literal["skipped", "failed"] = "skipped") -> TargetBench:
    return TargetBench(**_file_fields(manifest), status=status, note=why)


def _file_fields(manifest: Manifest) -> dict[str, Any]:
    """What every row says of its file, measured or not: from its manifest."""
    return {
        "target": manifest.target,
        "file": manifest.file,
        "runtime": manifest.runtime,
        "precision": manifest.precision,
        "image_input": manifest.image_input,
        "size_bytes": manifest.size_bytes,
    }


def _reference_predictions(run_dir: Path, fingerprint: str) -> np.ndarray | None:
    """PyTorch FP32's top-1 on the same images, if the run recorded them (compress does)."""
    path = run_dir / REFERENCE_NAME
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return stored["predictions"] if str(stored["data"]) == fingerprint else None


def _runtime_version(runtime: str) -> str | None:
    for package in RUNTIME_PACKAGES.get(runtime, ()):
        try:
            return f"{package} {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            continue
    return None
