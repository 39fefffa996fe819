"""Does the exported file do what the PyTorch model does? Checked at every export.

The bars each file is held to, the comparison itself, and ``run_here``: how every file
whose runtime exists on this host is run and compared (each runtime's Exporter.verify).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConversionError, VerificationError
from ..manifest import Fidelity
from ..runner.runtimes import open_artifact
from .exporter import Check, Checked

# Minimum top-1 agreement with PyTorch, percent, per precision. An int8 file with no simulator
# of its runtime for this layout is compared with the float model, where a faithful conversion
# of an imperfect quantization flips near-ties (an 82% model flips more than 2% of images)
# while a broken conversion lands far lower: its bar only catches the broken ones; the
# accuracy guard (--max-accuracy-drop) judges quality.
AGREEMENT_THRESHOLDS = {"fp32": 100.0, "fp16": 99.9, "int8": 95.0, "int8w": 98.0, "w8a8": 95.0}
# An int8 file against the simulator of its own runtime's integer arithmetic (the ptq or qat
# stage's model, the same quantization parameters): only the kernels' float rounding differs.
SIMULATION_AGREEMENT = 99.5
# A TFLite file with the image input normalises the pixels with int8 MUL and ADD ops in front
# of the network, which the simulator (fed normalised tensors) does not model: a pixel's code
# is off by one here and there, and near-ties flip (98.4% on the demo model).
IMAGE_INPUT_SIMULATION_AGREEMENT = 98.0

# A disagreement on an image where PyTorch itself hesitates between the two classes (its
# two logits closer than this fraction of its logit range) is a near-tie that rounding
# legitimately flips: fp16 carries ~3 significant digits. Without this, 99.9% of 512
# images would demand zero flips, and one near-tie would fail an export that is fine.
NEAR_TIE = {"fp32": 1e-5, "fp16": 1e-2, "int8": 0.0, "int8w": 0.0, "w8a8": 0.0}

HINTS = {
    "simulation": "the runtime computes differently from its simulation here: please report this with the model "
    "(--min-agreement accepts it knowingly)",
    "int8": "use more or more representative calibration images (--calibration-size, --train-data); a pruned "
    "model not yet fine-tuned flips more: fine-tune it, or accept a lower bar with --min-agreement",
    "int8w": "some layers lose too much with int8 weights; export the fp16 target instead",
    "w8a8": "use more or more representative calibration images, or quantization-aware training",
    "fp16": "the model may have layers whose values overflow float16; export tflite-fp32 instead",
    "fp32": "this is a converter bug: please report it with the model",
}


def check_fidelity(
    reference: np.ndarray,
    candidate: np.ndarray,
    precision: str,
    *,
    name: str,
    reference_logits: np.ndarray | None = None,
    minimum: float | None = None,
    against: str = "pytorch-fp32",
) -> Fidelity:
    """Compare outputs of the same images; raise when top-1 agreement is below the bar.

    Outputs are logits, or probabilities for an image-input file; then `reference_logits`
    (the reference's logits) judge near-ties on the same scale as for every other file.
    `minimum` replaces the precision's bar (ExportConfig.min_agreement, or SIMULATION_AGREEMENT
    for an int8 file checked against its simulator); `against` names what `reference` is.
    """
    fidelity, counted = _agreement(
        reference,
        candidate,
        precision,
        reference_logits,
        AGREEMENT_THRESHOLDS[precision] if minimum is None else minimum,
        against,
    )
    if counted < fidelity.threshold:
        what = "the PyTorch model" if against == "pytorch-fp32" else f"its {against} in PyTorch"
        raise VerificationError(
            f"{name} agrees with {what} on only {fidelity.agreement:.2f}% of {len(reference)} images "
            f"(needs {fidelity.threshold}%; largest output difference {fidelity.max_abs_diff:.4g})",
            HINTS["simulation"] if against.endswith("simulation") else HINTS[precision],
        )
    return fidelity


def measure_fidelity(
    reference: np.ndarray,
    candidate: np.ndarray,
    precision: str,
    *,
    against: str,
    reference_logits: np.ndarray | None = None,
) -> Fidelity:
    """The same comparison, recorded and not enforced (threshold 0)."""
    return _agreement(reference, candidate, precision, reference_logits, 0.0, against)[0]


def _agreement(
    reference: np.ndarray,
    candidate: np.ndarray,
    precision: str,
    reference_logits: np.ndarray | None,
    threshold: float,
    name: str,
) -> tuple[Fidelity, float]:
    """(the Fidelity record, the agreement in percent counting near-ties as agreeing)."""
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    rows = np.arange(len(reference))
    scores = reference if reference_logits is None else reference_logits
    margin = scores[rows, ref_top] - scores[rows, cand_top]
    spread = scores.max(1) - scores.min(1)
    flips = ref_top != cand_top
    near_ties = flips & (margin <= NEAR_TIE[precision] * spread)
    fidelity = Fidelity(
        samples=len(reference),
        agreement=round(float((~flips).mean() * 100), 3),
        near_ties=int(near_ties.sum()),
        max_abs_diff=float(np.abs(reference - candidate).max()),
        threshold=threshold,
        reference=name,
    )
    return fidelity, float((~flips | near_ties).mean() * 100)


def run_here(
    check: Check, *, simulation_agreement: float = SIMULATION_AGREEMENT, runtime: str | None = None
) -> Checked:
    """Run the file next to PyTorch on this host and compare their answers.

    The bar: the user's (``check.min_agreement``), else ``simulation_agreement`` for a file
    checked against the simulator of its runtime's arithmetic, else the precision's.
    ``runtime`` opens the file with another runtime than its suffix says (TensorRT's ONNX
    runs in onnxruntime here).
    """
    minimum = (
        check.min_agreement
        if check.min_agreement is not None
        else simulation_agreement
        if check.against_simulation
        else None
    )
    opened = open_artifact(check.path, check.threads, image_input=check.image_input, runtime=runtime)
    inputs, outputs = opened.io_specs()
    name, precision = check.path.name, check.target.precision
    if not check.image_input:
        answer = opened(check.tensors)
        fidelity = check_fidelity(
            check.logits, answer, precision, name=name, minimum=minimum, against=check.reference_name
        )
        return Checked(inputs, outputs, fidelity, None, answer)
    check_pixel_input(inputs, name)
    answer = opened(check.samples)
    fidelity = check_fidelity(
        softmax(check.logits),
        answer,
        precision,
        name=name,
        reference_logits=check.logits,
        minimum=minimum,
        against=check.reference_name,
    )
    return Checked(inputs, outputs, fidelity, None, answer)


def check_pixel_input(spec: dict, name: str) -> None:
    """An image input must take an app's pixels unchanged: uint8 and, if quantized, scale 1 and zero point 0."""
    if spec["dtype"] != "uint8" or spec.get("scale") not in (None, 1.0) or spec.get("zero_point") not in (None, 0):
        raise ConversionError(
            f"{name}: its image input is {spec['dtype']} (scale {spec.get('scale')}, zero point "
            f"{spec.get('zero_point')}), not raw uint8 pixels",
            "please report this with the model",
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
