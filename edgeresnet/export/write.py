"""Write a Model's deployable files, each verified against PyTorch and described by a manifest.

One function, `export`, which does what is the same for every runtime: it picks the model
each target is converted from and checked against (sources.py), writes the ONNX
intermediate once, and assembles each file's manifest. What a runtime does differently
(convert, verify, describe) is its Exporter's (exporter.py), found in registry.EXPORTERS
by the target's runtime: onnx/, tflite/, openvino/, coreml/, tensorrt/. Every artifact
lands in its own directory with a manifest.json. Every file is run next to PyTorch where
its runtime exists on this host; a Core ML package on Linux is checked by its spec instead
(Core ML runs only on macOS).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import normalize
from ..errors import ConversionError
from ..manifest import Manifest, TensorSpec, artifact_sha256, file_hashes, tool_versions, write_manifest
from ..models.model import Model
from ..quantization.simulate import PtqConfig
from ..quantization.tflite_exact import exact_reference
from .config import ExportConfig
from .exporter import Check, Checked, Conversion, Exporter
from .onnx.convert import export_onnx
from .registry import EXPORTERS
from .sources import (
    grouped,
    quantization_record,
    quantized_sources,
    reference_model,
    reference_name,
    simulates_runtime,
)
from .targets import Target
from .verify import measure_fidelity, softmax

__all__ = ["Artifact", "ExportConfig", "export"]

LABELS_NAME = "labels.txt"  # beside every artifact whose model has labels: one class name per line, in output order


@dataclass(frozen=True)
class Artifact:
    target: Target
    path: Path
    manifest: Manifest

    @property
    def directory(self) -> Path:
        return self.path.parent


def export(
    model: Model,
    targets: list[Target],
    out_dir: Path,
    *,
    samples: np.ndarray,
    calibration: np.ndarray | None = None,
    config: ExportConfig = ExportConfig(),
    threads: int | None = None,
    ptq: PtqConfig = PtqConfig(),
    log: Callable[[str], None] | None = None,
) -> list[Artifact]:
    """Write one directory per target under `out_dir`; `model` is a Model, a path or an nn.Module.

    `samples` are the images each file is verified on; `calibration` the ones that set int8
    activation ranges. Both are uint8 NHWC RGB pixels at the model's input size
    (data.sample_pixels): each converter normalises them as its graph needs.

    An int8 target of a float model is quantized first by the ptq stage (``ptq`` its settings)
    into a simulator of that runtime's integer arithmetic where one exists for the layout; the
    file holds the simulator's parameters and must agree with it on at least
    SIMULATION_AGREEMENT percent of `samples`. Agreement with the float model is measured and
    recorded too (``Manifest.fidelity_fp32``), not enforced: accuracy is the guard's to judge.

    Args:
        model: the model to convert (a QAT or ptq model for its int8 target).
        targets: what to write, ``parse_targets(["tflite-int8,onnx"])``.
        out_dir: the directory; each target gets a folder in it (a Path).
        samples: the verification images, ``sample_pixels(data, model.preprocess, 512)``.
        calibration: the int8 calibration images, ``calibrate(model, data).pixels``; needed by
            an int8 target of a float model.
        config: image input, int8 io types, and the agreement each file must reach.
        threads: CPU threads for running the files while verifying them.
        ptq: the ptq settings for an int8 target of a float model.
        log: called with each progress line.

    Returns one Artifact per target: its ``path``, ``directory`` and ``manifest``.

    Example::

        from edgeresnet.data import sample_pixels

        model = edgeresnet.load_model("resnet20.th")
        samples = sample_pixels(edgeresnet.open_dataset("cifar10/test.zip"), model.preprocess, 512)
        artifacts = edgeresnet.export(model, edgeresnet.parse_targets(["onnx,tflite-fp16"]), Path("out"),
                                      samples=samples)
        print([str(artifact.path) for artifact in artifacts])
    """
    if not isinstance(model, Model):
        from ..loading import as_model  # a path or a module: read as every stage reads it

        model = as_model(model)
    if config.image_input and model.in_chans != 3:
        raise ConversionError(
            f"--image-input makes files that take RGB camera images; this model takes {model.in_chans}-channel input",
            "export it without --image-input",
        )
    say = log or (lambda message: None)  # a line per step and per file: conversions take minutes
    work = out_dir / ".work"
    tensors = normalize(samples, model.preprocess)
    sources = quantized_sources(model, targets, calibration, ptq, say)
    # A TFLite file is checked against the exact simulation of its arithmetic where the layout has one.
    references = {
        target: exact_reference(reference_model(sources[target], target), target, config.image_input)
        for target in targets
    }
    # What every file is checked against: a simulator's predictions for the int8 file of its
    # runtime, the float network's for every other file.
    answers: dict[int, np.ndarray] = {}
    # The float model's answers too, for the agreement of int8 files with it (a QAT input has none).
    for reference in [*references.values(), *([model] if model.qat is None else [])]:  # one pass per model
        if id(reference) not in answers:
            answers[id(reference)] = reference.predictor()(tensors)
    logits = {target: answers[id(m)] for target, m in references.items()}
    float_logits = answers[id(model)] if model.qat is None else None
    paths, simulated, converted = {}, {}, {}
    for index, (source, group) in enumerate(grouped(sources)):
        # Each source model its own work folder: the TFLite worker reuses a SavedModel it finds there.
        job = _convert(source, group, out_dir, work / f"model-{index}", tensors, logits, calibration, config, say)
        paths.update(job.paths)
        simulated.update(job.simulated)
        converted.update(job.seconds)
    described = model.describe()  # hashes every weight: once, not once per target
    artifacts = []
    for target in targets:
        started = time.perf_counter()
        path = paths[target]
        exporter = EXPORTERS[target.runtime]
        image_input = config.image_input and target.takes_images
        files = file_hashes(path)
        against_simulation = simulates_runtime(references[target], target)
        checked = _verify(
            exporter,
            Check(
                target=target,
                path=path,
                reference=references[target],
                samples=samples,
                tensors=tensors,
                logits=logits[target],
                image_input=image_input,
                threads=threads,
                min_agreement=config.min_agreement,
                against_simulation=against_simulation,
                reference_name=reference_name(references[target], target),
            ),
        )
        validation = exporter.describe(target, path, checked)
        if target in simulated:
            validation = {**(validation or {}), "simulated_fidelity": simulated[target].model_dump()}
        fidelity_fp32 = None
        if against_simulation and float_logits is not None and checked.answers is not None:
            fidelity_fp32 = measure_fidelity(
                softmax(float_logits) if image_input else float_logits,
                checked.answers,
                target.precision,
                against="pytorch-fp32",
                reference_logits=float_logits if image_input else None,
            )
        manifest = Manifest(
            target=target.name,
            runtime=target.runtime,
            precision=target.precision,
            file=path.name,
            sha256=artifact_sha256(path, files),
            files=files,
            size_bytes=sum((path.parent / name).stat().st_size for name in files),
            input=TensorSpec(**checked.inputs),
            output=TensorSpec(**checked.outputs),
            image_input=image_input,
            preprocessing=model.preprocess.model_dump(),
            labels=list(model.labels) if model.labels else None,
            source_model=described,
            fidelity=checked.fidelity,
            fidelity_fp32=fidelity_fp32,
            validation=validation,
            quantization=quantization_record(sources[target], model, target, ptq),
            tools=tool_versions("torch", "onnx", "onnxsim", *exporter.tools),
        )
        write_manifest(manifest, path.parent)
        if model.labels:  # what an app's label list reads (Android's Task Library, a Swift array)
            (path.parent / LABELS_NAME).write_text("".join(f"{label}\n" for label in model.labels))
        artifacts.append(Artifact(target, path, manifest))
        say(
            f"{target.name}: {path.name}, {manifest.size_bytes / 1024:.1f} KB, {_checked(manifest)} "
            f"(converted in {converted[target]:.1f} s, checked in {time.perf_counter() - started:.1f} s)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return artifacts


def _checked(manifest: Manifest) -> str:
    """How the file was checked, in a few words, for the line export prints per file."""
    fidelity = manifest.fidelity
    if fidelity is None:
        return f"not run here ({(manifest.validation or {}).get('runtime_check', 'no runtime')}); spec checked"
    return f"agrees with {fidelity.reference} on {fidelity.agreement:.2f}% of {fidelity.samples} images"


def _convert(
    model: Model,
    targets: list[Target],
    out_dir: Path,
    work: Path,
    tensors: np.ndarray,
    logits: dict[Target, np.ndarray],
    calibration: np.ndarray | None,
    config: ExportConfig,
    say: Callable[[str], None] = lambda message: None,
) -> Conversion:
    """Write every target's file from ``model``; the Conversion returned holds {target: path}, for
    coreml-w8a8 its simulated fidelity, and {target: seconds its conversion took}."""
    onnx_path = None
    if any(EXPORTERS[target.runtime].reads_onnx(model, target) for target in targets):
        onnx_path = export_onnx(model.float_view(), work / "model.onnx")
    # NNCF and coremltools calibrate on normalised tensors; TFLite's worker takes the pixels.
    normalized = None if calibration is None else normalize(calibration, model.preprocess)
    paths = {}
    for target in targets:
        directory = out_dir / target.name
        directory.mkdir(parents=True, exist_ok=True)
        paths[target] = directory / f"{model.arch}-{target.name}{target.suffix}"
    job = Conversion(model, paths, work, onnx_path, tensors, logits, calibration, normalized, config, say)
    # Each runtime converts all its targets of this model in one call (TFLite's share one run),
    # the runtimes in the order their first target was asked for.
    by_runtime: dict[str, list[Target]] = {}
    for target in targets:
        by_runtime.setdefault(target.runtime, []).append(target)
    for runtime, group in by_runtime.items():
        EXPORTERS[runtime].convert(job, group)
    return job


def _verify(exporter: Exporter, check: Check) -> Checked:
    """Check one written file through its runtime's exporter (benchmarks/scaling.py times this step)."""
    return exporter.verify(check)
