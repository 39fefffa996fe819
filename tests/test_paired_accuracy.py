"""The paired comparison benchmarks/paired_accuracy.py draws its accuracy conclusions from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from paired_accuracy import mcnemar_exact_p, paired_difference  # noqa: E402


def test_mcnemar_p_is_the_two_sided_binomial_tail():
    assert mcnemar_exact_p(3, 9) == pytest.approx(2 * (1 + 12 + 66 + 220) / 4096)  # P(X <= 3), X ~ B(12, 1/2)
    assert mcnemar_exact_p(9, 3) == mcnemar_exact_p(3, 9)
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact_p(5, 5) == 1.0 and mcnemar_exact_p(0, 0) == 1.0


def test_paired_difference_counts_discordant_images_and_its_interval_is_the_paired_one():
    rng = np.random.default_rng(0)
    ours, other = rng.random(10_000) < 0.89, rng.random(10_000) < 0.88
    result = paired_difference(ours, other)
    assert result["only_edgeresnet_right"] == int(np.sum(ours & ~other))
    assert result["only_other_right"] == int(np.sum(other & ~ours))
    per_image = ours.astype(float) - other.astype(float)
    assert result["difference_points"] == pytest.approx(100 * per_image.mean(), abs=0.005)
    half = 1.96 * per_image.std() / np.sqrt(len(per_image))
    low, high = result["ci95_points"]
    assert low == pytest.approx(100 * (per_image.mean() - half), abs=0.01)
    assert high == pytest.approx(100 * (per_image.mean() + half), abs=0.01)


def test_identical_files_do_not_differ():
    correct = np.arange(100) % 3 > 0
    assert paired_difference(correct, correct) == {"only_edgeresnet_right": 0, "only_other_right": 0,
                                                   "difference_points": 0.0, "ci95_points": [0.0, 0.0],
                                                   "mcnemar_p": 1.0}
