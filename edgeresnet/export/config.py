"""ExportConfig: the user's choices that shape every exported file (image input, io types, checks)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
