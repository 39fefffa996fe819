"""One row of a run's results per file: evaluated on the run's data, timed, and its manifest
completed with what was measured."""

from __future__ import annotations

from pathlib import Path

from ..data import ImageDataset, normalize
from ..evaluate import Accuracy, agreement, evaluate
from ..export import Artifact
from ..manifest import AccuracySpec, write_manifest
from ..models.model import Model
from ..run_report import ResultRow
from ..runner.runtimes import open_artifact
from ..runner.timing import measure_latency
from .plan import failure_reason
from .stage_runner import Source


def accuracy_spec(accuracy: Accuracy, fingerprint: str) -> AccuracySpec:
    """Top-1 and top-5 are None on unlabelled data: the samples and their fingerprint still say what ran."""
    return AccuracySpec(top1=accuracy.top1, top5=accuracy.top5, samples=accuracy.n, data=fingerprint)


def pytorch_row(model: Model, baseline: Accuracy, one, options) -> ResultRow:
    predict = model.predictor(options.threads)
    size = sum(t.numel() * t.element_size() for t in model.module.state_dict().values())
    return ResultRow(
        target="pytorch-fp32",
        file=None,
        size_bytes=size,
        top1=baseline.top1,
        top5=baseline.top5,
        delta_top1=0.0 if baseline.labelled else None,
        agreement=100.0,
        latency=measure_latency(
            lambda: predict(one), runs=options.latency_runs, warmup=options.latency_warmup
        ).to_dict(),
    )


def artifact_row(
    artifact: Artifact,
    data: ImageDataset,
    fingerprint: str,
    spec,
    pixels,
    baseline: Accuracy,
    source: Source,
    options,
    limit: float | None,
    described: dict,
) -> ResultRow:
    """Evaluate and time one artifact; `pixels` is the image (uint8 NHWC RGB) it is timed on. Its
    manifest learns its accuracy (None on unlabelled data), what it was verified and measured on
    (``described``), and whether it failed the ``limit`` on lost top-1."""
    file = str(Path(artifact.target.name) / artifact.path.name)
    # The manifest learns what the artifact was measured to do; the runner checks against it later.
    update = {"baseline": accuracy_spec(baseline, fingerprint), "data": described}
    if artifact.manifest.fidelity is None:  # no runtime for it here: its spec was validated instead
        write_manifest(artifact.manifest.model_copy(update=update), artifact.directory)
        check = (artifact.manifest.validation or {}).get("runtime_check", "no runtime on this host")
        return ResultRow(
            target=artifact.target.name,
            file=file,
            size_bytes=artifact.manifest.size_bytes,
            top1=None,
            top5=None,
            delta_top1=None,
            agreement=None,
            latency=None,
            note=f"not run: {check}",
            source=source.stage,
        )
    # A TensorRT file where no NVIDIA GPU is: its graph's accuracy in onnxruntime on the CPU, and no
    # latency (a CPU's says nothing of the engine's); `bench` on the device measures the engine.
    elsewhere = tensorrt_elsewhere(artifact)
    runtime = open_artifact(
        artifact.path, options.threads, image_input=artifact.manifest.image_input, runtime="onnx" if elsewhere else None
    )
    accuracy = evaluate(
        runtime,
        data,
        spec,
        batch_size=options.batch_size,
        progress=artifact.target.name,
        layout=runtime.input_layout,
        normalized=not runtime.image_input,
    )
    update["accuracy"] = accuracy_spec(accuracy, fingerprint)
    delta = round(accuracy.top1 - baseline.top1, 4) if accuracy.top1 is not None and baseline.top1 is not None else None
    update["failed"] = failure_reason(artifact.target.name, delta, limit)
    write_manifest(artifact.manifest.model_copy(update=update), artifact.directory)
    raw = runtime.to_raw(pixels if runtime.image_input else normalize(pixels, spec))
    latency = (
        None
        if elsewhere
        else measure_latency(
            lambda: runtime.invoke(raw), runs=options.latency_runs, warmup=options.latency_warmup
        ).to_dict()
    )
    return ResultRow(
        target=artifact.target.name,
        file=file,
        size_bytes=artifact.manifest.size_bytes,
        top1=accuracy.top1,
        top5=accuracy.top5,
        delta_top1=delta,
        agreement=round(agreement(accuracy.predictions, baseline.predictions), 3),
        latency=latency,
        source=source.stage,
        source_agreement=round(agreement(accuracy.predictions, source.predictions), 3),
        note=f"accuracy of its ONNX in onnxruntime (CPU), no latency: {elsewhere}; bench it on the device"
        if elsewhere
        else None,
    )


def tensorrt_elsewhere(artifact: Artifact) -> str | None:
    """Why a TensorRT file's engine cannot be built here (None for other files, or where it can)."""
    if artifact.target.runtime != "tensorrt":
        return None
    from ..runner.tensorrt import unavailable_reason

    return unavailable_reason()
