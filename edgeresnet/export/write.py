"""Write a Model's deployable files, each verified against PyTorch and described by a manifest.

One function, `export`, behind which each runtime has its own module (onnx.py,
tflite.py, openvino.py, coreml.py + coreml_check.py). Every artifact lands in its own directory with a
manifest.json. Every file is run next to PyTorch where its runtime exists on this host;
a CoreML package on Linux is checked by its spec instead (Core ML runs only on macOS).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..data import normalize, working
from ..errors import ConversionError, TargetError
from ..manifest import Fidelity, Manifest, TensorSpec, artifact_sha256, file_hashes, tool_versions, write_manifest
from ..model import Model
from ..quantization.simulate import PtqConfig
from ..quantization.tflite_exact import exact_reference
from ..runner.runtimes import open_artifact
from .coreml import export_coreml
from .coreml_check import validate_coreml
from .coreml_w8a8 import quantize_w8a8
from .onnx import export_onnx
from .openvino import export_openvino
from .targets import Target
from .tensorrt import export_tensorrt, quantization_points
from .tflite import export_tflite
from .verify import IMAGE_INPUT_SIMULATION_AGREEMENT, SIMULATION_AGREEMENT, check_fidelity, measure_fidelity

# The converters and runtimes behind each kind of artifact, recorded in its manifest.
TOOLS = {
    "onnx": ("onnxruntime",),
    "tflite": ("onnx2tf", "tensorflow", "ai-edge-litert"),
    "openvino": ("openvino", "nncf"),
    "coreml": ("coremltools",),
    "tensorrt": ("onnxruntime",),  # its int8 file is quantized by onnxruntime; the engine is built on the device
}

__all__ = ["Artifact", "ExportConfig", "export"]

LABELS_NAME = "labels.txt"  # beside every artifact whose model has labels: one class name per line, in output order
# The int8 target whose arithmetic each quantization-aware training scheme simulates.
QAT_TARGETS = {"tflite": "tflite-int8", "openvino": "openvino-int8", "coreml": "coreml-w8a8"}
# The int8 targets the ptq stage quantizes in a simulator of their runtime (where it knows the layout).
SIMULATED_SCHEMES = {"tflite-int8": "tflite", "openvino-int8": "openvino"}


class ExportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # Bake the preprocessing in: the TFLite, OpenVINO and Core ML files take a uint8 RGB
    # image of the input size and return class probabilities, as an app feeds a camera
    # frame. The onnx target stays the plain intermediate (normalised tensor in, logits out).
    image_input: bool = False
    # Output type of int8 TFLite files, and their input type when it is a tensor (an
    # image input is uint8). Default: int8, or float32 probabilities with image_input.
    io_dtype: Literal["int8", "uint8", "float32"] | None = None
    verify_samples: int = Field(default=512, ge=1)  # images on which each file is compared with PyTorch
    # Top-1 agreement with PyTorch each file must reach, percent; default per precision (int8:
    # 98). A pruned model before its fine-tuning has small margins that int8 flips more often:
    # lowering the bar ships it knowingly, and the manifest records the bar it passed.
    min_agreement: float | None = Field(default=None, ge=0, le=100)

    @property
    def tflite_io(self) -> tuple[str, str]:
        """(input, output) types of an int8 TFLite file."""
        if self.image_input:
            return "uint8", self.io_dtype or "float32"
        return self.io_dtype or "int8", self.io_dtype or "int8"


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
    sources = _quantized_sources(model, targets, calibration, ptq, say)
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
        group_paths, group_simulated, group_seconds = _convert(
            source, group, out_dir, work / f"model-{index}", tensors, logits, calibration, config, say
        )
        paths.update(group_paths)
        simulated.update(group_simulated)
        converted.update(group_seconds)
    described = model.describe()  # hashes every weight: once, not once per target
    artifacts = []
    for target in targets:
        started = time.perf_counter()
        path = paths[target]
        image_input = config.image_input and target.takes_images
        files = file_hashes(path)
        against_simulation = _simulates_runtime(references[target], target)
        minimum = (
            config.min_agreement
            if config.min_agreement is not None
            else _simulation_bar(target, image_input)
            if against_simulation
            else None
        )
        inputs, outputs, fidelity, validation, outputs_seen = _verify(
            target,
            path,
            references[target],
            samples,
            tensors,
            logits[target],
            image_input,
            threads,
            minimum,
            reference=_reference_name(references[target], target),
        )
        if target in simulated:
            validation["simulated_fidelity"] = simulated[target].model_dump()
        if target.runtime == "tensorrt":
            validation = _tensorrt_validation(path, target)
        fidelity_fp32 = None
        if against_simulation and float_logits is not None and outputs_seen is not None:
            fidelity_fp32 = measure_fidelity(
                _softmax(float_logits) if image_input else float_logits,
                outputs_seen,
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
            input=TensorSpec(**inputs),
            output=TensorSpec(**outputs),
            image_input=image_input,
            preprocessing=model.preprocess.model_dump(),
            labels=list(model.labels) if model.labels else None,
            source_model=described,
            fidelity=fidelity,
            fidelity_fp32=fidelity_fp32,
            validation=validation,
            quantization=_quantization_record(sources[target], model, target, ptq),
            tools=tool_versions("torch", "onnx", "onnxsim", *TOOLS[target.runtime]),
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


def _quantized_sources(
    model: Model, targets: list[Target], calibration: np.ndarray | None, config: PtqConfig, say: Callable[[str], None]
) -> dict[Target, Model]:
    """The model each target is converted from: for an int8 target of a float model, the ptq
    stage's simulator of that runtime where the layout has one; else ``model``."""
    from ..quantization.simulate import can_simulate, simulate

    by_scheme: dict[str, Model] = {}
    sources = {}
    for target in targets:
        scheme = SIMULATED_SCHEMES.get(target.name)
        if (
            model.qat is None
            and scheme
            and calibration is not None
            and len(calibration)
            and can_simulate(model, scheme)
        ):
            if scheme not in by_scheme:
                started = time.perf_counter()
                say(f"ptq: choosing {target.name}'s parameters in its simulator on {len(calibration)} images")
                with working(f"ptq: {scheme} simulator"):
                    by_scheme[scheme] = simulate(model, calibration, scheme, config)
                say(f"ptq: {scheme} parameters chosen ({time.perf_counter() - started:.1f} s)")
            sources[target] = by_scheme[scheme]
        else:
            sources[target] = model
    return sources


def grouped(sources: dict) -> list[tuple]:
    """{target: the model it comes from} as [(model, [targets])], one group per distinct model
    (by identity), in the order the targets come."""
    groups: dict[int, tuple] = {}
    for target, source in sources.items():
        groups.setdefault(id(source), (source, []))[1].append(target)
    return list(groups.values())


def _simulation_bar(target: Target, image_input: bool) -> float:
    """The agreement an int8 file must reach with its simulator (verify.py says why a TFLite
    file with the image input has a lower one)."""
    return IMAGE_INPUT_SIMULATION_AGREEMENT if image_input and target.runtime == "tflite" else SIMULATION_AGREEMENT


def _simulates_runtime(model: Model, target: Target) -> bool:
    """Whether ``model`` simulates ``target``'s own integer arithmetic: our TFLite simulator, or our
    OpenVINO CPU one. NNCF's and coremltools' quantized modules evaluate FakeQuantize formulas,
    which the runtimes' kernels round differently (issue 6 measured 99.35% for NNCF's)."""
    if not _trained_for(model, target):
        return False
    from ..quantization.openvino_cpu import CpuSimulator

    return target.runtime == "tflite" or (target.runtime == "openvino" and isinstance(model.module, CpuSimulator))


def _reference_name(reference: Model, target: Target) -> str:
    if _simulates_runtime(reference, target):
        return f"{target.name} simulation"
    return "pytorch-fp32" if reference.qat is None else f"{reference.qat.scheme} qat model"


def _quantization_record(source: Model, model: Model, target: Target, config: PtqConfig) -> dict | None:
    """How an int8 file's parameters were chosen, for its manifest."""
    if not target.needs_calibration:
        return None
    if source is not model:
        return {"method": "ptq", "simulator": source.qat.scheme, **config.model_dump()}
    if _trained_for(model, target):
        return {"method": "qat", "simulator": model.qat.scheme}
    return {"method": "converter", "tool": TOOLS[target.runtime][0]}


def reference_model(model: Model, target: Target) -> Model:
    """The model an artifact of ``target`` must reproduce."""
    if model.qat is None or _trained_for(model, target):
        return model
    if target.needs_calibration:
        raise TargetError(
            f"this model was trained for {QAT_TARGETS[model.qat.scheme]}'s int8 arithmetic, not {target.name}'s",
            f"train it for {target.name} (qat scheme {target.runtime}), "
            f"or export {target.name} from the model before QAT",
        )
    return model.float_view()


def _trained_for(model: Model, target: Target) -> bool:
    """Whether ``model`` is a QAT model of ``target``'s int8 arithmetic."""
    return model.qat is not None and QAT_TARGETS[model.qat.scheme] == target.name


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
):
    """Write every target's file; returns {target: path}, for coreml-w8a8 its simulated fidelity, and
    {target: seconds its conversion took} (the TFLite files share one run)."""
    spec = model.preprocess
    # Every converter but coremltools reads ONNX, except OpenVINO's for a model trained for it.
    if any(
        target.runtime in ("onnx", "tflite", "tensorrt")
        or (target.runtime == "openvino" and not _trained_for(model, target))
        for target in targets
    ):
        onnx_path = export_onnx(model.float_view(), work / "model.onnx")
    # NNCF and coremltools calibrate on normalised tensors; TFLite's worker takes the pixels.
    normalized = None if calibration is None else normalize(calibration, spec)
    paths, simulated, seconds = {}, {}, {}
    for target in targets:
        directory = out_dir / target.name
        directory.mkdir(parents=True, exist_ok=True)
        paths[target] = path = directory / f"{model.arch}-{target.name}{target.suffix}"
        if target.runtime != "tflite":
            say(f"{target.name}: converting")
        started = time.perf_counter()
        if target.runtime == "onnx":
            shutil.copy(onnx_path, path)
        elif target.runtime == "openvino":
            export_openvino(
                model.module if _trained_for(model, target) else onnx_path,
                path,
                target.precision,
                calibration=normalized,
                preprocess=spec if config.image_input else None,
                labels=model.labels,
                input_shape=model.input_shape,
            )
        elif target.runtime == "tensorrt":
            export_tensorrt(onnx_path, path, target.precision, calibration=normalized, work=work)
        elif target.runtime == "coreml":
            converted = model
            if target.precision == "w8a8" and not _trained_for(model, target):
                converted = quantize_w8a8(model, normalized)
                # The package cannot run on Linux; the fake-quantized module it was converted
                # from can, and must already pass the int8 bar.
                simulated[target] = check_fidelity(
                    logits[target],
                    converted.predictor()(tensors),
                    target.precision,
                    name=f"{path.name} (simulated in PyTorch)",
                    minimum=config.min_agreement,
                )
            export_coreml(converted, path, target.precision, image_input=config.image_input)
        seconds[target] = time.perf_counter() - started
    tflite = {t.precision: paths[t] for t in targets if t.runtime == "tflite"}
    if tflite:  # one onnx2tf run and one TensorFlow start-up for every precision
        say(
            f"{', '.join(t.name for t in targets if t.runtime == 'tflite')}: converting (onnx2tf and TensorFlow, "
            "one run for all)"
        )
        started = time.perf_counter()
        with working("TFLite conversion"):
            export_tflite(
                onnx_path,
                tflite,
                workdir=work / "tflite",
                samples=tensors,
                calibration=calibration,
                preprocess=spec,
                image_input=config.image_input,
                io_dtypes=config.tflite_io,
                description=_tflite_description(model, config.image_input),
                qat=_tflite_ranges(model, calibration) if "int8" in tflite else None,
            )
        seconds.update({t: time.perf_counter() - started for t in targets if t.runtime == "tflite"})
    return paths, simulated, seconds


def _tflite_ranges(model: Model, calibration: np.ndarray | None) -> dict | None:
    """For a model trained for TFLite int8: its learned ranges, and how the converter's graph shows each point."""
    if model.qat is None or model.qat.scheme != "tflite" or calibration is None:
        return None
    import torch

    from ..quantization.tflite import ranges, signatures

    images = calibration[:4]
    return {
        "ranges": ranges(model.module),
        "images": images,
        "signatures": signatures(model.module, torch.from_numpy(normalize(images, model.preprocess))),
    }


def _verify(
    target: Target,
    path: Path,
    model: Model,
    samples: np.ndarray,
    tensors: np.ndarray,
    logits: np.ndarray,
    image_input: bool,
    threads: int | None,
    minimum: float | None = None,
    *,
    reference: str = "pytorch-fp32",
) -> tuple[dict, dict, Fidelity | None, dict | None, np.ndarray | None]:
    """Run the file next to PyTorch where its runtime exists; (input spec, output spec, fidelity,
    validation, the file's outputs as logits, None where it cannot run here).

    `samples` are the pixels, `tensors` the same images normalised, `logits` the reference's answer on them.
    """
    if target.runtime == "coreml":
        validation = validate_coreml(
            path,
            precision=target.precision,
            image_input=image_input,
            labels=model.labels,
            input_size=model.preprocess.input_size,
            model=model,
            samples=samples,
            channels=model.in_chans,
        )
        # The manifest's own fields say these; validation keeps the spec checks.
        inputs, outputs = validation.pop("input"), validation.pop("output")
        validation.pop("size_bytes", None)
        fidelity = validation.pop("fidelity", None)  # None on Linux: validation["runtime_check"] says why
        return inputs, outputs, fidelity, validation, None
    # A TensorRT file is run here by onnxruntime on the CPU: the engine is built on the device.
    runtime = open_artifact(
        path, threads, image_input=image_input, runtime="onnx" if target.runtime == "tensorrt" else None
    )
    inputs, outputs = runtime.io_specs()
    if not image_input:
        answer = runtime(tensors)
        return (
            inputs,
            outputs,
            check_fidelity(logits, answer, target.precision, name=path.name, minimum=minimum, against=reference),
            None,
            answer,
        )
    _check_pixel_input(inputs, path.name)
    answer = runtime(samples)
    fidelity = check_fidelity(
        _softmax(logits),
        answer,
        target.precision,
        name=path.name,
        reference_logits=logits,
        minimum=minimum,
        against=reference,
    )
    return inputs, outputs, fidelity, None, answer


def _tensorrt_validation(path: Path, target: Target) -> dict:
    """What was and was not checked of a TensorRT file here, for its manifest."""
    record = {
        "verified_in": "onnxruntime (CPU): the TensorRT engine is built and measured on the device "
        "by `edgeresnet bench`",
        "engine_precision": target.precision,
    }
    if target.precision == "int8":
        record["qdq"] = quantization_points(path)
    return record


def _check_pixel_input(spec: dict, name: str) -> None:
    """An image input must take an app's pixels unchanged: uint8 and, if quantized, scale 1 and zero point 0."""
    if spec["dtype"] != "uint8" or spec.get("scale") not in (None, 1.0) or spec.get("zero_point") not in (None, 0):
        raise ConversionError(
            f"{name}: its image input is {spec['dtype']} (scale {spec.get('scale')}, zero point "
            f"{spec.get('zero_point')}), not raw uint8 pixels",
            "please report this with the model",
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def _tflite_description(model: Model, image_input: bool) -> dict:
    """What the TFLite metadata tells Android Studio and the Task Library about the file."""
    from .._version import __version__

    p = model.preprocess
    if image_input:
        # The file normalises inside: the app feeds raw pixels (mean 0, std 1).
        mean, std, value_range = [0.0] * 3, [1.0] * 3, (0.0, 255.0)
        input_text = (
            f"RGB image, {p.input_size}x{p.input_size}, uint8 (resize and crop it first); normalised "
            f"inside the model as (x/255 - mean)/std with mean {list(p.mean)}, std {list(p.std)}"
        )
        output_text = "class probabilities"
    else:
        # In pixel units, as the Task Library applies (x - mean) / std to a float input.
        mean, std = [255.0 * m for m in p.mean], [255.0 * s for s in p.std]
        value_range = (min(-m / s for m, s in zip(mean, std)), max((255.0 - m) / s for m, s in zip(mean, std)))
        input_text = (
            f"{p.channel_order} image, {p.input_size}x{p.input_size}, NHWC, normalised as "
            f"(x/255 - mean)/std with mean {list(p.mean)}, std {list(p.std)}"
        )
        output_text = "logits (apply softmax for probabilities)"
    return {
        "name": model.arch,
        "version": __version__,
        "author": "edgeresnet",
        "license": "see the model's source",
        "description": f"{model.arch} image classifier, {model.num_classes} classes, exported by edgeresnet",
        "input_description": input_text,
        "mean": mean,
        "std": std,
        "input_min": value_range[0],
        "input_max": value_range[1],
        "output_description": output_text,
        "labels": list(model.labels) if model.labels else None,
        "output_name": "probability" if image_input else "logits",
    }
