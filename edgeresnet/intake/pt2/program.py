"""The program's JSON, checked before torch sees it, then rebuilt into an ExportedProgram.

torch's deserializer would ``eval`` symbolic shape expressions, resolve any ``torch.*``
callable a node names, and carry names into generated code; so the JSON may hold
registered operators, plain arithmetic on shape symbols and plain names only, and the
rebuilt graph is checked a second time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

import torch

from edgeresnet.errors import CheckpointError, first_line

from .archive import PROGRAM, TRUST_HINT, damaged_file

# A name the file gives to a tensor, a node, a module path or a symbol: it ends up in
# the Python code fx generates (getattr(self, "NAME"), def forward(self, NAME)).
_NAME = re.compile(r"[\w.\-]*", re.ASCII)
# Strings the checks below do not read as names: node metadata (kept as data, shown only
# in debug printouts), pytree specs (json.loads, registered types only), string
# arguments of operators (repr'd into the code), the torch version and guard code (the
# safe reader never turns it into code).
_FREE_TEXT_KEYS = {"metadata", "in_spec", "out_spec", "as_string", "as_strings", "torch_version", "guards_code"}
# Argument and input kinds that carry callables, subgraphs or script objects: a ResNet
# has none of them, and each lets the file name code to run.
_FORBIDDEN_KINDS = {
    "as_graph": "a subgraph argument (a higher-order operator)",
    "as_operator": "an operator passed as an argument",
    "as_custom_obj": "a script-object argument",
    "custom_obj": "a script-object input",
}
# sympy.sympify eval()s its string: symbolic shapes may use only these names, numbers,
# quoted plain words, and arithmetic. No attribute access, no brackets, no dunders.
_SYMPY_NAMES = frozenset(
    """Symbol Integer Rational Float Mul Add Pow Mod Max Min Abs floor ceiling sqrt
    Eq Ne Lt Le Gt Ge StrictLessThan StrictGreaterThan LessThan GreaterThan Equality
    Unequality And Or Not true false True False oo zoo nan Infinity NegativeInfinity
    NegativeOne One Zero Half Piecewise ExprCondPair
    FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift
    RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator
    TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat Identity
    positive negative integer real nonnegative nonpositive finite infinite zero nonzero
    even odd rational commutative extended_real precision""".split()
)
_SYMBOL_NAME = re.compile(r"[a-z]+\d+", re.ASCII)  # s0, s77, u3, zuf0: torch's shape symbols
_EXPR_TOKEN = re.compile(
    r"\s+|(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)|'\w*'"
    r"|\*\*|//|<=|>=|==|!=|[-+*/%(),=<>~&|]",
    re.ASCII,
)


def check_program(path: Path, doc: Any) -> None:
    """Refuse a program whose JSON would reach code: names, operators, shape expressions."""
    if not isinstance(doc, dict) or not isinstance(doc.get("graph_module"), dict):
        raise damaged_file(path, f"{PROGRAM} holds no graph_module")
    allowed = _allowed_non_aten_targets()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in _FORBIDDEN_KINDS and v:
                    refuse_program(path, f"it passes {_FORBIDDEN_KINDS[k]}")
                if k == "custom_obj_values" and v:
                    refuse_program(path, "it holds script-object values")
                if k in _FREE_TEXT_KEYS:
                    continue
                check_name(path, str(k), "a name in the program")
                if k == "expr_str":
                    _check_expr(path, v)
                elif k == "target":
                    _check_target(path, v, allowed)
                else:
                    walk(v, k)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str):
            check_name(path, value, f"the program's {key or 'text'}")

    walk(doc, None)


def check_name(path: Path, name: str, where: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        refuse_program(path, f"{where} {name!r:.80} is not a plain name")


def _check_target(path: Path, target: Any, allowed: set[str]) -> None:
    if isinstance(target, str) and target in allowed:
        return
    op = None
    if isinstance(target, str) and target.startswith("torch.ops."):
        parts = target.split(".")[2:]
        if len(parts) == 3 and all(p.isidentifier() and not p.startswith("__") for p in parts):
            try:
                op = getattr(getattr(getattr(torch.ops, parts[0]), parts[1]), parts[2])
            except (AttributeError, RuntimeError):
                op = None
    if not isinstance(op, torch._ops.OpOverload):
        refuse_program(path, f"it calls {target!r:.80}, which is not a registered PyTorch operator")


def _allowed_non_aten_targets() -> set[str]:
    """The Python functions torch's serializer writes for symbolic-shape arithmetic."""
    import operator

    from torch._export.serde.serialize import _SYM_OPS

    return {f"{op.__module__}.{op.__name__}" for op in (*_SYM_OPS, operator.getitem)}


def _check_expr(path: Path, expr: Any) -> None:
    if not isinstance(expr, str) or len(expr) > 4000:
        refuse_program(path, "a symbolic shape expression is not a short string")
    position = 0
    while position < len(expr):
        match = _EXPR_TOKEN.match(expr, position)
        if match is None:
            refuse_program(path, f"the symbolic shape expression {expr!r:.80} is not plain arithmetic")
        name = match.group("name")
        if name is not None and name not in _SYMPY_NAMES and not _SYMBOL_NAME.fullmatch(name):
            refuse_program(path, f"the symbolic shape expression {expr!r:.80} names {name!r}")
        position = match.end()


def refuse_program(path: Path, found: str) -> NoReturn:
    raise CheckpointError(
        f"refused to load {path}: {found}, and rebuilding its program could run arbitrary code",
        hint=TRUST_HINT,
    )


def deserialize(path: Path, doc: dict, state_dict: dict, constants: dict):
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    doc = dict(doc, guards_code=[])  # never turned into code (see reader._as_inference_module)
    try:
        program = _dict_to_dataclass(schema.ExportedProgram, doc)
        # Dicts, not bytes: deserialize_torch_artifact passes them through untouched, and
        # no example inputs, so it has nothing to unpickle.
        exported = ExportedProgramDeserializer(None).deserialize(program, state_dict, constants, None)
    except CheckpointError:
        raise
    except Exception as error:  # a schema or version this torch does not read, or damage
        written = doc.get("torch_version") or "an unknown torch"
        raise CheckpointError(
            f"cannot read {path}: torch {torch.__version__} cannot rebuild the program written by "
            f"torch {written} ({first_line(error) or type(error).__name__})",
            hint="export and save the model again with this torch version",
        ) from None
    exported._guards_code = []
    _check_graph(path, exported)
    return exported


def _check_graph(path: Path, exported) -> None:
    """The rebuilt graph calls PyTorch operators only (a second look after the JSON)."""
    import operator

    from torch._export.serde.serialize import _SYM_OPS

    for module in exported.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in graph.nodes if graph is not None else ():
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            target = node.target
            if node.op != "call_function" or not (
                isinstance(target, torch._ops.OpOverload) or target in _SYM_OPS or target is operator.getitem
            ):
                refuse_program(path, f"its graph has a {node.op} of {target!r:.80}")
