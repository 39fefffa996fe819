"""PyTorch -> ONNX, simplified in-process.

ONNX is the intermediate every converter here reads. We simplify it ourselves with
onnxsim, in this process, because onnx2tf otherwise shells out to whatever `onnxsim`
is on PATH and overwrites its input; without that step the zero-padding shortcuts of
CIFAR ResNets (a strided Slice followed by a channel Pad) do not convert.

Then the graph itself, whatever module it was traced from, is made converter-friendly
(`explicit_pool_padding`): the rewrite works on ONNX nodes, not on module classes, so a
user's own ResNet gets it as well as a model of the zoo.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path

import torch

from ...errors import ConversionError, first_line
from ...models.model import Model

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
                module,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                external_data=False,
                verbose=False,
            )
        assert program is not None  # the dynamo exporter always returns its program (None: the legacy one)
        graph = program.model_proto
        simplified, ok = onnxsim.simplify(graph)
    except Exception as exc:  # the exporter's own reason is what the user needs
        raise ConversionError(f"ONNX export failed{exporter_reason(exc)}") from exc
    if not ok:
        raise ConversionError("onnxsim could not validate the simplified ONNX graph")
    explicit_pool_padding(simplified)
    onnx.checker.check_model(simplified)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(simplified, str(path))
    return path


def exporter_reason(exc: BaseException) -> str:
    """' at node NAME (op): why', from torch.onnx's chain of exceptions.

    The outermost one only says that step 3/3 failed; the node and the missing function
    are in the exceptions it was raised from.
    """
    chain: list[BaseException] = []
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(chain) < 10:
        seen.add(id(link))
        chain.append(link)
        link = link.__cause__ or link.__context__
    node = ""
    for error in chain:
        found = re.search(r"node %(\S+) .*?target=([\w.]+)", str(error))
        if found:
            node = f" at node {found[1]} ({found[2]})"
    return f"{node}: {first_line(str(chain[-1]), 400) or type(chain[-1]).__name__}"


def explicit_pool_padding(model) -> int:
    """Move every padded MaxPool's padding into a Pad node before it; the outputs stay identical.

    onnx2tf turns a padded MaxPool into a PADV2 filled with float32's lowest value
    (-3.4e38) and an unpadded MAX_POOL_2D. That is exact in float, but int8 calibration
    then sees -3.4e38 in the pad's output, and the pad, the pool and the op that feeds
    them (sharing one scale) get a scale of ~1.3e36: XNNPACK refuses such a file ("failed
    to create XNNPACK runtime ... failed to prepare") and without XNNPACK it computes
    garbage. A Pad that only repeats values already in each window changes no maximum:
    zeros where the input comes out of a ReLU (a plain PAD, as fast as before), otherwise
    copies of the border ("edge": every window holding a padded cell also holds the
    border cell it copies, as a pool pads at most half its kernel). Edits `model` in
    place; returns how many pools it rewrote.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    constants = {init.name: init for init in graph.initializer}
    taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)} | set(constants)

    def fresh(base: str) -> str:
        name, i = base, 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        return name

    rewritten, nodes = 0, []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", []))
        if (
            node.op_type != "MaxPool"
            or node.domain not in ("", "ai.onnx")
            or not any(pads)
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or any(d != 1 for d in attrs.get("dilations", []))
            or len([o for o in node.output if o]) != 1
        ):
            nodes.append(node)
            continue
        spatial = len(pads) // 2
        pad_name = fresh(f"{node.name or node.output[0]}_pad")
        inputs = [node.input[0], fresh(f"{pad_name}_pads")]
        # ONNX Pad: all begins then all ends, batch and channels included.
        graph.initializer.append(
            numpy_helper.from_array(np.array([0, 0, *pads[:spatial], 0, 0, *pads[spatial:]], dtype=np.int64), inputs[1])
        )
        if _non_negative(node.input[0], producers, constants):
            mode = "constant"  # the default value: 0
        else:
            mode = "edge"
        nodes.append(helper.make_node("Pad", inputs, [fresh(f"{pad_name}_out")], name=pad_name, mode=mode))
        attrs["pads"] = [0] * len(pads)
        pool = helper.make_node(
            "MaxPool", [nodes[-1].output[0]], list(node.output), name=node.name, domain=node.domain, **attrs
        )
        nodes.append(pool)
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
    return rewritten


def _non_negative(name: str, producers: dict, constants: dict) -> bool:
    """Whether the tensor is a ReLU's output (or a Clip's with a lower bound of at least 0)."""
    from onnx import helper, numpy_helper

    node = producers.get(name)
    if node is None:
        return False
    if node.op_type == "Relu":
        return True
    if node.op_type == "Clip":
        low = None
        if len(node.input) > 1 and node.input[1] in constants:
            low = float(numpy_helper.to_array(constants[node.input[1]]).reshape(-1)[0])
        for attr in node.attribute:  # opset < 11
            if attr.name == "min":
                low = float(helper.get_attribute_value(attr))
        return low is not None and low >= 0
    return False


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
