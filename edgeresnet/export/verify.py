"""Does the exported file do what the PyTorch model does? Checked at every export."""

from __future__ import annotations

import numpy as np

from ..errors import VerificationError
from ..manifest import Fidelity

# Minimum top-1 agreement with PyTorch, percent, per precision.
AGREEMENT_THRESHOLDS = {"fp32": 100.0, "fp16": 99.9, "int8": 98.0, "int8w": 98.0, "w8a8": 98.0}

# A disagreement on an image where PyTorch itself hesitates between the two classes (its
# two logits closer than this fraction of its logit range) is a near-tie that rounding
# legitimately flips: fp16 carries ~3 significant digits. Without this, 99.9% of 512
# images would demand zero flips, and one near-tie would fail an export that is fine.
NEAR_TIE = {"fp32": 1e-5, "fp16": 1e-2, "int8": 0.0, "int8w": 0.0, "w8a8": 0.0}

HINTS = {
    "int8": "use more or more representative calibration images (--calibration-size, --train-data); a pruned "
            "model not yet fine-tuned flips more: fine-tune it, or accept a lower bar with --min-agreement",
    "int8w": "some layers lose too much with int8 weights; export the fp16 target instead",
    "w8a8": "use more or more representative calibration images, or quantization-aware training",
    "fp16": "the model may have layers whose values overflow float16; export tflite-fp32 instead",
    "fp32": "this is a converter bug: please report it with the model",
}


def check_fidelity(reference: np.ndarray, candidate: np.ndarray, precision: str, *, name: str,
                   reference_logits: np.ndarray | None = None, minimum: float | None = None) -> Fidelity:
    """Compare outputs of the same images; raise when top-1 agreement is below the precision's bar.

    Outputs are logits, or probabilities for an image-input file; then `reference_logits`
    (PyTorch's logits) judge near-ties on the same scale as for every other file. `minimum`
    replaces the precision's bar (ExportConfig.min_agreement).
    """
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
        threshold=AGREEMENT_THRESHOLDS[precision] if minimum is None else minimum,
    )
    counted = float((~flips | near_ties).mean() * 100)
    if counted < fidelity.threshold:
        raise VerificationError(
            f"{name} agrees with the PyTorch model on only {fidelity.agreement:.2f}% of {len(reference)} images "
            f"(needs {fidelity.threshold}%; largest logit difference {fidelity.max_abs_diff:.4g})",
            HINTS[precision],
        )
    return fidelity
