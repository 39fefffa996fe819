"""edgeresnet.evaluate: accuracy from logits, the evaluation loop, agreement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeresnet.data import open_dataset
from edgeresnet.errors import DataError, VerificationError
from edgeresnet.evaluate import accuracy_from_logits, agreement, evaluate
from edgeresnet.preprocess import Preprocess


def test_top1_and_top5_by_hand():
    logits = np.array(
        [
            [9, 1, 2, 3, 4, 5, 6],  # label 0: top-1 right
            [9, 8, 7, 6, 5, 4, 3],  # label 4: 5th best, top-5 only
            [9, 8, 7, 6, 5, 4, 3],  # label 5: 6th best, neither
            [0, 0, 1, 0, 0, 0, 0],  # label 2: right
        ],
        dtype=np.float32,
    )
    acc = accuracy_from_logits(logits, np.array([0, 4, 5, 2]))
    assert (acc.top1, acc.top5, acc.n) == (50.0, 75.0, 4)
    assert acc.predictions.tolist() == [0, 0, 0, 2] and acc.predictions.dtype == np.int64


def test_top5_with_fewer_than_five_classes():
    acc = accuracy_from_logits(np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]]), np.array([2, 1]))
    assert acc.top1 == 0.0 and acc.top5 == 100.0  # k = 3: every label is in the top 3


def test_ties_never_put_top1_outside_top5():
    acc = accuracy_from_logits(np.zeros((3, 10)), np.array([0, 0, 0]))
    assert acc.top1 == acc.top5 == 100.0


def test_accuracy_is_frozen_and_checks_shapes():
    acc = accuracy_from_logits(np.eye(3), np.arange(3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        acc.top1 = 0.0
    assert "top-1 100.00%" in str(acc)
    with pytest.raises(ValueError):
        accuracy_from_logits(np.eye(3), np.arange(4))


def test_agreement():
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 75.0
    with pytest.raises(ValueError):
        agreement(np.array([1, 2]), np.array([1, 2, 3]))


@pytest.fixture
def coloured(tmp_path):
    """12 images whose grey level gives away their label, so a 'model' can read it."""
    labels = np.arange(12) % 4
    images = np.stack([np.full((8, 8, 3), 40 * label, np.uint8) for label in labels])
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    return open_dataset(tmp_path / "d.npz")


def oracle(inputs: np.ndarray, wrong_for: int | None = None) -> np.ndarray:
    """Logits from the red channel of a normalised NCHW batch: the label, except one class."""
    red = inputs[:, 0].mean(axis=(1, 2)) * 0.229 + 0.485  # undo the normalisation
    label = np.rint(red * 255 / 40).astype(int)
    if wrong_for is not None:
        label = np.where(label == wrong_for, (label + 1) % 4, label)
    return np.eye(4, dtype=np.float32)[label]


def test_evaluate_with_a_callable(coloured, capsys):
    spec = Preprocess(input_size=8)
    acc = evaluate(oracle, coloured, spec, batch_size=5)
    assert (acc.top1, acc.top5, acc.n) == (100.0, 100.0, 12)
    np.testing.assert_array_equal(acc.predictions, coloured.labels)
    assert capsys.readouterr().out == ""  # the default progress bar stays off stdout

    half = evaluate(lambda x: oracle(x, wrong_for=3), coloured, spec, batch_size=5, progress=None)
    assert half.top1 == 75.0 and half.top5 == 100.0
    assert agreement(acc.predictions, half.predictions) == 75.0


def test_evaluate_subset_layout_and_head_shapes(coloured):
    spec = Preprocess(input_size=8)
    seen = []

    def uint8_model(x):  # takes raw NHWC pixels, answers (N, 1, 1, classes)
        seen.append((x.dtype, x.shape[1:]))
        return np.eye(4)[x[:, 0, 0, 0] // 40][:, None, None, :]

    acc = evaluate(uint8_model, coloured, spec, limit=5, seed=3, layout="NHWC", normalized=False, progress=None)
    assert acc.n == 5 and acc.top1 == 100.0
    assert seen == [(np.uint8, (8, 8, 3))]
    np.testing.assert_array_equal(acc.predictions, coloured.subset(5, seed=3).labels)


def test_evaluate_rejects_mismatched_outputs(coloured):
    spec = Preprocess(input_size=8)
    with pytest.raises(DataError, match="gives 2 scores but the data set .* has 4 classes"):
        evaluate(lambda x: np.zeros((len(x), 2)), coloured, spec, progress=None)
    with pytest.raises(ValueError, match="for a batch of"):
        evaluate(lambda x: np.zeros((1, 4)), coloured, spec, progress=None)


def test_evaluate_on_cifar_subset(shared):
    ds = open_dataset(shared / "datasets" / "cifar10-jpeg" / "test.zip")
    acc = evaluate(lambda x: np.zeros((len(x), 10)), ds, Preprocess.cifar(), limit=100, progress=None)
    assert acc.n == 100 and acc.predictions.tolist() == [0] * 100
    assert acc.top1 == pytest.approx(100.0 * (ds.subset(100).labels == 0).mean())


def test_ties_go_to_the_lower_class_index():
    logits = np.array([[1, 1, 1, 1, 1, 1, 1], [0, 2, 2, 2, 2, 2, 2]], dtype=np.int8)  # as an int8 model gives
    # row 0: classes 0-4 are the top 5; row 1: classes 1-5, so class 6 is out.
    assert accuracy_from_logits(logits, np.array([4, 6])).top5 == 50.0
    assert accuracy_from_logits(logits, np.array([5, 5])).top5 == 50.0
    assert accuracy_from_logits(logits, np.array([0, 1])).top1 == 100.0


def test_nan_logits_are_an_error():
    with pytest.raises(VerificationError, match="NaN"):
        accuracy_from_logits(np.array([[np.nan, 1.0]]), np.array([0]))
