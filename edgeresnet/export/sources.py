"""Which model each target's file is converted from, and which model it must reproduce.

An int8 target of a float model is converted from the ptq stage's simulator of its
runtime (where the layout has one); a model trained for one target's int8 arithmetic
(the qat stage) is its own reference for that target and a float model for the others.
The manifest records how each int8 file's parameters were chosen (``quantization_record``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast, get_args

import numpy as np

from ..data import working
from ..errors import TargetError
from ..models.model import Model
from ..quantization.simulate import PtqConfig
from ..quantization.simulate import Scheme as PtqScheme
from .registry import EXPORTERS
from .targets import QAT_TARGETS, Target


def simulated_scheme(target: Target) -> PtqScheme | None:
    """The simulator ptq quantizes ``target`` in: its runtime's int8 arithmetic, where ptq has one
    (TFLite's, OpenVINO CPU's; Core ML's is coremltools' own)."""
    return cast(PtqScheme, target.qat_scheme) if target.qat_scheme in get_args(PtqScheme) else None


def quantized_sources(
    model: Model, targets: list[Target], calibration: np.ndarray | None, config: PtqConfig, say: Callable[[str], None]
) -> dict[Target, Model]:
    """The model each target is converted from: for an int8 target of a float model, the ptq
    stage's simulator of that runtime where the layout has one; else ``model``."""
    from ..quantization.simulate import can_simulate, simulate

    by_scheme: dict[PtqScheme, Model] = {}
    sources = {}
    for target in targets:
        scheme = simulated_scheme(target)
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


def reference_model(model: Model, target: Target) -> Model:
    """The model an artifact of ``target`` must reproduce."""
    if model.qat is None or trained_for(model, target):
        return model
    if target.needs_calibration:
        raise TargetError(
            f"this model was trained for {QAT_TARGETS[model.qat.scheme]}'s int8 arithmetic, not {target.name}'s",
            f"train it for {target.name} (qat scheme {target.runtime}), "
            f"or export {target.name} from the model before QAT",
        )
    return model.float_view()


def trained_for(model: Model, target: Target) -> bool:
    """Whether ``model`` is a QAT (or ptq) model of ``target``'s int8 arithmetic."""
    return model.qat is not None and model.qat.scheme == target.qat_scheme


def simulates_runtime(model: Model, target: Target) -> bool:
    """Whether ``model`` simulates ``target``'s own integer arithmetic: our TFLite simulator, or our
    OpenVINO CPU one (Exporter.simulates). NNCF's and coremltools' quantized modules evaluate
    FakeQuantize formulas, which the runtimes' kernels round differently (issue 6 measured
    99.35% for NNCF's)."""
    return trained_for(model, target) and EXPORTERS[target.runtime].simulates(model)


def reference_name(reference: Model, target: Target) -> str:
    """What the manifest calls the model a file was checked against."""
    if simulates_runtime(reference, target):
        return f"{target.name} simulation"
    return "pytorch-fp32" if reference.qat is None else f"{reference.qat.scheme} qat model"


def quantization_record(source: Model, model: Model, target: Target, config: PtqConfig) -> dict | None:
    """How an int8 file's parameters were chosen, for its manifest."""
    if not target.needs_calibration:
        return None
    if source is not model:
        assert source.qat is not None  # a source other than the model is a ptq simulator
        return {"method": "ptq", "simulator": source.qat.scheme, **config.model_dump()}
    if model.qat is not None and trained_for(model, target):
        return {"method": "qat", "simulator": model.qat.scheme}
    return {"method": "converter", "tool": EXPORTERS[target.runtime].tools[0]}
