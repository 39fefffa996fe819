"""compress: load -> evaluate -> calibrate -> export (verified) -> measure -> report.

The pipeline only sequences stages and writes the run directory:

    RUN/
      config.json            the resolved options of this run
      report.json            RunReport: accuracy, size and latency per target
      reference-predictions.npz  PyTorch FP32's top-1 per image of the data, for `bench`
      <target>/manifest.json  one directory per artifact
      <target>/<arch>-<target>.<ext>
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .data import ImageDataset, normalize, sample_pixels
from .evaluate import Accuracy, agreement, evaluate
from .export import Artifact, ExportConfig, Target, export
from .manifest import AccuracySpec, write_manifest
from .model import Model
from .report import ResultRow, RunReport
from .rundir import staged_directory
from .runner.bench import REFERENCE_NAME
from .runner.host import host_info
from .runner.runtimes import open_artifact
from .runner.timing import measure_latency
from .stages.calibrate import CalibrationConfig, calibrate
from .stages.load import check_labels


class CompressOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    calibration: CalibrationConfig = CalibrationConfig()
    export: ExportConfig = ExportConfig()
    threads: int = Field(default=2, ge=1)
    batch_size: int = Field(default=256, ge=1)
    latency_runs: int = Field(default=100, ge=1)
    latency_warmup: int = Field(default=10, ge=0)


def compress(
    model: Model,
    data: ImageDataset,
    targets: list[Target],
    out: Path,
    *,
    calibration_data: ImageDataset | None = None,
    options: CompressOptions = CompressOptions(),
    overwrite: bool = False,
    log=lambda message: None,
) -> RunReport:
    """Compress `model` to each target, evaluated on `data`; returns what report.json holds.

    Calibration images come from `calibration_data` (e.g. the training set) when given,
    else from `data`.
    """
    check_labels(model.num_classes, data.classes)
    model = model.replace(labels=model.labels or data.classes)
    seconds: dict[str, float] = {}

    @contextmanager
    def stage(name: str):
        start = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - start, 3)
        log(f"{name} done in {seconds[name]:.1f} s")

    with staged_directory(Path(out), overwrite) as run:
        (run / "config.json").write_text(
            json.dumps({"targets": [t.name for t in targets], "options": options.model_dump()}, indent=2) + "\n"
        )
        spec = model.preprocess
        with stage("evaluate-fp32"):
            baseline = evaluate(model.predictor(options.threads), data, spec, batch_size=options.batch_size,
                                progress="PyTorch FP32")
        # Per-image FP32 predictions: `edgeresnet bench` measures agreement against them, on any device.
        fingerprint = data.fingerprint()  # hashes every sample name (and pixels of an .npz): once
        np.savez(run / REFERENCE_NAME, predictions=baseline.predictions, data=fingerprint)
        calibration = None
        if any(t.needs_calibration for t in targets):
            with stage("calibrate"):
                calibration = calibrate(model, calibration_data or data, options.calibration)
        with stage("export"):
            samples = sample_pixels(data, spec, min(options.export.verify_samples, len(data)), seed=1)
            artifacts = export(model, targets, run, samples=samples,
                               calibration=calibration.pixels if calibration else None,
                               config=options.export, threads=options.threads)

        rows = [_pytorch_row(model, baseline, normalize(samples[:1], spec), options)]
        for artifact in artifacts:
            with stage(f"evaluate-{artifact.target.name}"):
                rows.append(_artifact_row(artifact, data, fingerprint, spec, samples[:1], baseline, options))

        report = RunReport(
            model=model.describe(),
            data={"name": Path(data.source).name, "source": data.source, "samples": len(data),
                  "fingerprint": fingerprint, "classes": list(data.classes)},
            calibration=calibration.describe() if calibration else None,
            results=rows, seconds=seconds, host=host_info(options.threads),
        )
        (run / "report.json").write_text(report.model_dump_json(indent=2) + "\n")
    return report


def _accuracy_spec(accuracy: Accuracy, fingerprint: str) -> AccuracySpec:
    return AccuracySpec(top1=accuracy.top1, top5=accuracy.top5, samples=accuracy.n, data=fingerprint)


def _pytorch_row(model: Model, baseline: Accuracy, one, options: CompressOptions) -> ResultRow:
    predict = model.predictor(options.threads)
    size = sum(t.numel() * t.element_size() for t in model.module.state_dict().values())
    return ResultRow(
        target="pytorch-fp32", file=None, size_bytes=size, top1=baseline.top1, top5=baseline.top5,
        delta_top1=0.0, agreement=100.0,
        latency=measure_latency(lambda: predict(one), runs=options.latency_runs, warmup=options.latency_warmup).to_dict(),
    )


def _artifact_row(artifact: Artifact, data: ImageDataset, fingerprint: str, spec, pixels, baseline: Accuracy,
                  options) -> ResultRow:
    """Evaluate and time one artifact; `pixels` is the image (uint8 NHWC RGB) it is timed on."""
    file = str(Path(artifact.target.name) / artifact.path.name)
    # The manifest learns what the artifact was measured to do; the runner checks against it later.
    update = {"baseline": _accuracy_spec(baseline, fingerprint)}
    if artifact.manifest.fidelity is None:  # no runtime for it here: its spec was validated instead
        write_manifest(artifact.manifest.model_copy(update=update), artifact.directory)
        check = (artifact.manifest.validation or {}).get("runtime_check", "no runtime on this host")
        return ResultRow(target=artifact.target.name, file=file, size_bytes=artifact.manifest.size_bytes, top1=None,
                         top5=None, delta_top1=None, agreement=None, latency=None, note=f"not run: {check}")
    runtime = open_artifact(artifact.path, options.threads, image_input=artifact.manifest.image_input)
    accuracy = evaluate(runtime, data, spec, batch_size=options.batch_size, progress=artifact.target.name,
                        layout=runtime.input_layout, normalized=not runtime.image_input)
    update["accuracy"] = _accuracy_spec(accuracy, fingerprint)
    write_manifest(artifact.manifest.model_copy(update=update), artifact.directory)
    raw = runtime.to_raw(pixels if runtime.image_input else normalize(pixels, spec))
    latency = measure_latency(lambda: runtime.invoke(raw), runs=options.latency_runs, warmup=options.latency_warmup)
    return ResultRow(
        target=artifact.target.name, file=file, size_bytes=artifact.manifest.size_bytes,
        top1=accuracy.top1, top5=accuracy.top5, delta_top1=round(accuracy.top1 - baseline.top1, 4),
        agreement=round(agreement(accuracy.predictions, baseline.predictions), 3), latency=latency.to_dict(),
    )
