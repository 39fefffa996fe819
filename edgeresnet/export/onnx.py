"""PyTorch -> ONNX, simplified in-process.

ONNX is the intermediate every converter here reads. We simplify it ourselves with
onnxsim, in this process, because onnx2tf otherwise shells out to whatever `onnxsim`
is on PATH and overwrites its input; without that step the zero-padding shortcuts of
CIFAR ResNets (a strided Slice followed by a channel Pad) do not convert.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from ..errors import ConversionError
from ..model import Model

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: Model, path: Path) -> Path:
    """Write the model as a static-shape (batch 1) ONNX graph at `path`."""
    import onnx
    import onnxsim

    module = model.copy_module().eval()
    example = torch.zeros(model.input_shape)
    try:
        # The exporter narrates on stdout; results go to stdout, so keep it quiet.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                external_data=False, verbose=False,
            )
        graph = program.model_proto
        simplified, ok = onnxsim.simplify(graph)
    except Exception as exc:  # the exporter's own reason is what the user needs
        raise ConversionError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc
    if not ok:
        raise ConversionError("onnxsim could not validate the simplified ONNX graph")
    onnx.checker.check_model(simplified)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(simplified, str(path))
    return path


@contextlib.contextmanager
def _quiet_logger(name: str):
    # The exporter warns about torchvision ops it cannot register; we never use them.
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
