"""Top-1/top-5 accuracy of any model that maps a numpy batch to numpy logits.

The model is a plain callable, so one loop measures a PyTorch module (wrapped by the
caller), a TFLite interpreter or an OpenVINO model the same way, on the same images,
in the same order. Like edgeresnet.data, this imports neither torch nor tensorflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeresnet.data import ImageDataset, Layout, batches
from edgeresnet.errors import DataError, VerificationError
from edgeresnet.preprocess import Preprocess

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Accuracy:
    """Top-1 and top-5 in percent over ``n`` images, and each image's top-1 class. On an
    unlabelled data set top-1 and top-5 are None: only the predictions (for agreement) exist."""

    top1: float | None
    top5: float | None
    n: int
    predictions: np.ndarray = field(repr=False, compare=False)

    @property
    def labelled(self) -> bool:
        return self.top1 is not None

    def __str__(self) -> str:
        if not self.labelled:
            return f"no labels ({self.n} images)"
        return f"top-1 {self.top1:.2f}%  top-5 {self.top5:.2f}%  ({self.n} images)"


def hits(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: the top-1 class, whether it is right, whether the label is in the top k.

    Ties go to the lower class index, as argmax does: int8 models give tied logits
    often, and the answer must not depend on how a partial sort happens to order them.
    """
    if np.isnan(logits).any():
        raise VerificationError(
            "the model returned NaN scores", "check the exported model; its arithmetic overflowed or is broken"
        )
    top1 = logits.argmax(axis=1)
    k = min(5, logits.shape[1])
    mine = logits[np.arange(len(labels)), labels][:, None]
    before = np.arange(logits.shape[1]) < labels[:, None]
    rank = (logits > mine).sum(axis=1) + ((logits == mine) & before).sum(axis=1)
    return top1, top1 == labels, rank < k


def accuracy_from_logits(logits: np.ndarray, labels: np.ndarray) -> Accuracy:
    """Accuracy of (N, classes) logits against N labels; top-5 is top-k for fewer classes."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected (N, classes) logits and N labels, got {logits.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("no samples to measure accuracy on")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1} for {logits.shape[1]} classes")
    top1, right, in_topk = hits(logits, labels)
    n = len(labels)
    return Accuracy(100.0 * int(right.sum()) / n, 100.0 * int(in_topk.sum()) / n, n, top1.astype(np.int64))


def evaluate(
    predict: Predict,
    dataset: ImageDataset,
    spec: Preprocess,
    *,
    batch_size: int = 256,
    limit: int | None = None,
    seed: int = 0,
    layout: Layout = "NCHW",
    normalized: bool = True,
    progress: str | None = "Evaluating",
) -> Accuracy:
    """Run ``predict`` over the data set (or a seeded subset of ``limit`` images).

    Only the per-image results are kept, not the logits, so a 1000-class model on
    50,000 images needs no more memory than one batch. On an unlabelled data set only the
    predictions are measured: top-1 and top-5 are None.

    Args:
        predict: a numpy batch -> numpy (N, classes) logits callable (``Model.predictor()``).
        dataset: the images, labelled or not; its classes must not outnumber the model's outputs.
        spec: the preprocessing (resize, crop, normalisation) that turns images into inputs.
        batch_size: images per call of ``predict``.
        limit, seed: a seeded subset of this many images; None: all of them.
        layout: "NCHW" (PyTorch) or "NHWC" (TFLite) inputs.
        normalized: float32 normalised inputs; False: uint8 RGB pixels (image-input artifacts).
        progress: the progress bar's label; None draws none.

    Returns an Accuracy: ``top1`` and ``top5`` in percent, ``n``, and each image's ``predictions``.

    Example::

        model = edgeresnet.load_model("resnet20.th")
        accuracy = edgeresnet.evaluate(model.predictor(), edgeresnet.open_dataset("cifar10/test.zip"),
                                       model.preprocess, limit=1000)
        print(accuracy.top1, accuracy.top5)
    """
    sample = dataset.subset(limit, seed)
    labelled = sample.labelled
    predictions, right, in_topk = [], 0, 0
    for inputs, labels in batches(sample, spec, batch_size, layout=layout, normalized=normalized, progress=progress):
        logits = np.asarray(predict(inputs))
        if logits.shape[0] != len(inputs):
            raise ValueError(f"predict returned {logits.shape} for a batch of {len(inputs)} images")
        logits = logits.reshape(len(inputs), -1)  # heads that keep (N, 1, 1, classes)
        if logits.shape[1] < len(sample.classes):
            raise DataError(
                f"the model gives {logits.shape[1]} scores but the data set {sample.source} has "
                f"{len(sample.classes)} classes",
                "evaluate on a data set with the classes the model was trained on",
            )
        if not labelled:  # the top-1 class alone, ties to the lower index as hits() breaks them
            predictions.append(hits(logits, np.zeros(len(logits), dtype=np.int64))[0])
            continue
        top1, hit1, hitk = hits(logits, labels)
        predictions.append(top1)
        right += int(hit1.sum())
        in_topk += int(hitk.sum())
    n = len(sample)
    predicted = np.concatenate(predictions).astype(np.int64)
    if not labelled:
        return Accuracy(None, None, n, predicted)
    return Accuracy(100.0 * right / n, 100.0 * in_topk / n, n, predicted)


def agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Percent of images on which two models predict the same top-1 class."""
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    if pred_a.shape != pred_b.shape or pred_a.ndim != 1:
        raise ValueError(f"predictions must be two equal-length vectors, got {pred_a.shape} and {pred_b.shape}")
    if len(pred_a) == 0:
        raise ValueError("no predictions to compare")
    return 100.0 * float((pred_a == pred_b).mean())
