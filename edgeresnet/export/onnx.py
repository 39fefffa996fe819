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
import re
import warnings
from pathlib import Path

import torch

from ..errors import ConversionError, first_line
from ..model import Model

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: Model, path: Path) -> Path:
    """Write the model as a static-shape (batch 1) ONNX graph at `path`."""
    import onnx
    import onnxsim

    module = _converter_friendly(model.copy_module().eval())
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
        raise ConversionError(f"ONNX export failed{exporter_reason(exc)}") from exc
    if not ok:
        raise ConversionError("onnxsim could not validate the simplified ONNX graph")
    onnx.checker.check_model(simplified)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(simplified, str(path))
    return path


def exporter_reason(exc: BaseException) -> str:
    """' at node NAME (op): why', from torch.onnx's chain of exceptions.

    The outermost one only says that step 3/3 failed; the node and the missing function
    are in the exceptions it was raised from.
    """
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen and len(chain) < 10:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    node = ""
    for error in chain:
        found = re.search(r"node %(\S+) .*?target=([\w.]+)", str(error))
        if found:
            node = f" at node {found[1]} ({found[2]})"
    return f"{node}: {first_line(str(chain[-1]), 400) or type(chain[-1]).__name__}"


def _converter_friendly(module: torch.nn.Module) -> torch.nn.Module:
    """Rewrite, on the copy being exported, what converters get wrong; the outputs stay identical.

    The torchvision stem's padded max-pool becomes a zero pad and an unpadded max-pool:
    onnx2tf pads a max-pool with -inf (a PADV2), which int8 TFLite cannot represent and
    LiteRT aborts on. Zero padding gives the same result because the pool's input comes
    out of a ReLU, so it is never below zero.
    """
    from ..models.resnet import ResNet

    pool = getattr(module, "maxpool", None)
    if isinstance(module, ResNet) and isinstance(pool, torch.nn.MaxPool2d) and pool.padding:
        module.maxpool = torch.nn.Sequential(
            torch.nn.ZeroPad2d(pool.padding),
            torch.nn.MaxPool2d(pool.kernel_size, pool.stride, padding=0, ceil_mode=pool.ceil_mode),
        )
    return module


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
