"""The value that travels through the pipeline: a network plus what describes it.

Stages take a ``Model`` and return a new one (``dataclasses.replace``); they never
change the one they were given. Exporters and manifests read the description, so an
artifact always knows its input size, preprocessing, labels and where it came from.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..preprocess import Preprocess


@dataclass(frozen=True)
class QatState:
    """What quantization-aware training leaves: ``Model.module`` simulates one runtime's int8
    arithmetic (its predictions are what that int8 artifact must reproduce). ``float_module``
    is plain float layers for converters and float targets: for TFLite the QAT network
    itself, batch norm folded; for schemes whose quantizers are not plain layers, the
    network QAT started from."""

    scheme: str  # "tflite", "openvino" or "coreml": the int8 arithmetic simulated
    float_module: nn.Module


@dataclass(frozen=True)
class Model:
    module: nn.Module
    arch: str
    family: str  # "cifar" or "imagenet": decides default preprocessing
    preprocess: Preprocess
    num_classes: int
    labels: tuple[str, ...] | None = None
    source: str = "<module>"
    options: dict[str, Any] = field(default_factory=dict)
    plan: Any = None  # a pruned model's ChannelPlan: the widths cut from `arch`
    qat: QatState | None = None  # set by the qat stage
    in_chans: int = 3  # 1 for a grayscale model
    layout: str = "edgeresnet"  # the source layout it was read in (see edgeresnet.intake.layouts)

    def float_view(self) -> Model:
        """The model as plain float layers: itself, or a QAT model's folded float network."""
        return self if self.qat is None else self.replace(module=self.qat.float_module, qat=None)

    def replace(self, **changes) -> Model:
        return dataclasses.replace(self, **changes)

    def copy_module(self) -> nn.Module:
        """A deep copy to change, so that stages leave their input untouched."""
        return copy.deepcopy(self.module)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        size = self.preprocess.input_size
        return (1, self.in_chans, size, size)

    def fingerprint(self) -> str:
        """sha256 of the weights, independent of file format and key order."""
        digest = hashlib.sha256()
        for key, value in sorted(self.module.state_dict().items()):
            digest.update(key.encode())
            if isinstance(value, torch.Tensor):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            else:  # quantized modules also keep dtypes and schemes in their state
                digest.update(repr(value).encode())
        return digest.hexdigest()

    def predictor(self, threads: int | None = None):
        """A numpy NCHW float32 batch -> numpy logits callable, for evaluate()."""
        module = self.module.eval()

        def predict(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

        if threads:
            torch.set_num_threads(threads)
        return predict

    def describe(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "layout": self.layout,
            "family": self.family,
            "num_classes": self.num_classes,
            "source": self.source,
            "options": self.options,
            "sha256": self.fingerprint(),
            **({"channel_plan": self.plan.model_dump(mode="json")} if self.plan is not None else {}),
            **({"qat": self.qat.scheme} if self.qat is not None else {}),
        }
