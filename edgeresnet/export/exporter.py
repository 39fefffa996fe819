"""The Exporter protocol: what export asks of each runtime, and what it hands each one.

``export`` (write.py) does what is the same for every runtime: it picks the model each
target is converted from and checked against, writes the ONNX intermediate once, names
each file, and assembles its manifest. What a runtime does differently sits behind the
Exporter in its folder (onnx/, tflite/, openvino/, coreml/, tensorrt/), which export finds
by ``Target.runtime`` in ``registry.EXPORTERS``:

- ``convert`` writes the files of that runtime's targets from one model;
- ``verify`` checks a written file: runs it where its runtime exists here and compares
  its answers with the reference's, or checks what it declares where it cannot run;
- ``describe`` says what the manifest records about how the file was checked.

This module imports neither torch nor a converter: a new runtime's module can be read
(and type-checked) against it without them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..manifest import Fidelity
    from ..models.model import Model
    from .config import ExportConfig
    from .targets import Target


@dataclass
class Conversion:
    """What an exporter's ``convert`` gets: one source model and where its files go."""

    model: Model  # the model the files are converted from (a ptq simulator, a QAT model or the float one)
    paths: dict[Target, Path]  # where each target's file goes; its folder exists
    work: Path  # scratch space of this model, removed when the export ends
    onnx: Path | None  # the ONNX intermediate, written when an exporter reads it (Exporter.reads_onnx)
    tensors: np.ndarray  # the verification images, normalised: NCHW float32
    logits: dict[Target, np.ndarray]  # the answers each target's file must reproduce on `tensors`
    calibration: np.ndarray | None  # the int8 calibration images: uint8 NHWC RGB pixels
    normalized: np.ndarray | None  # the same, normalised (what NNCF and coremltools calibrate on)
    config: ExportConfig
    say: Callable[[str], None] = lambda message: None
    seconds: dict[Target, float] = field(default_factory=dict)  # how long each target's conversion took
    # Agreement measured during a conversion, for files that cannot run here (a Core ML
    # package on Linux is checked through the PyTorch module it was converted from).
    simulated: dict[Target, Fidelity] = field(default_factory=dict)

    @contextlib.contextmanager
    def converting(self, targets: list[Target], how: str = "") -> Iterator[None]:
        """Say that ``targets`` are being converted and time it: each is charged the whole run
        (several targets converted together share one)."""
        self.say(f"{', '.join(t.name for t in targets)}: converting{how}")
        started = time.perf_counter()
        yield
        self.seconds.update({t: time.perf_counter() - started for t in targets})


@dataclass(frozen=True)
class Check:
    """What an exporter's ``verify`` gets: a written file and what it must reproduce."""

    target: Target
    path: Path
    reference: Model  # the model the file must reproduce
    samples: np.ndarray  # the verification images: uint8 NHWC RGB pixels
    tensors: np.ndarray  # the same, normalised
    logits: np.ndarray  # the reference's answers on them
    image_input: bool  # the file takes pixels and returns probabilities (ExportConfig.image_input)
    threads: int | None  # for the runtime that runs the file
    min_agreement: float | None  # the user's bar (ExportConfig.min_agreement); None: the default one
    against_simulation: bool  # `reference` computes the runtime's own integer arithmetic
    reference_name: str  # what the manifest calls the reference ("pytorch-fp32", "tflite-int8 simulation")


@dataclass(frozen=True)
class Checked:
    """What ``verify`` found: the file's input and output (manifest.TensorSpec fields) and its agreement."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    fidelity: Fidelity | None  # None where the file cannot run here
    validation: dict[str, Any] | None  # checks of the file's own spec, where the runtime has them
    answers: np.ndarray | None  # the file's outputs on the images; None where it cannot run here


class Exporter(Protocol):
    """One runtime's part of export. Registered in registry.EXPORTERS under its runtime name."""

    # The converters and runtimes behind its files, recorded with their versions in each
    # manifest; the first is named as the quantizer of an int8 file it calibrates itself.
    tools: tuple[str, ...]

    def reads_onnx(self, model: Model, target: Target) -> bool:
        """Whether converting ``target`` from ``model`` reads the ONNX intermediate (Conversion.onnx)."""
        ...

    def simulates(self, reference: Model) -> bool:
        """Whether ``reference``, a model trained or quantized for this runtime's int8 target,
        computes the runtime's own integer arithmetic, so that its file must agree with it
        almost exactly (verify.SIMULATION_AGREEMENT) rather than within the precision's bar."""
        ...

    def convert(self, job: Conversion, targets: list[Target]) -> None:
        """Write ``job.paths[t]`` for each of ``targets`` (this runtime's targets of ``job.model``,
        in the order asked), timing each in ``job.seconds`` (``job.converting``)."""
        ...

    def verify(self, check: Check) -> Checked:
        """Check the written file against the reference's answers; raise VerificationError when
        it falls short."""
        ...

    def describe(self, target: Target, path: Path, checked: Checked) -> dict[str, Any] | None:
        """The manifest's ``validation`` record: what was and was not checked of the file here."""
        ...
