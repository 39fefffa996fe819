"""Read a ``.pt2`` file (``torch.export.save``) without letting the file run code.

``torch.export.load`` trusts the file it reads. In torch 2.13 it unpickles, with
``weights_only=False``, every weight or tensor constant marked ``use_pickle``
(torch/export/pt2_archive/_package.py, ``_load_state_dict`` and ``_load_constants``),
``pickle.loads`` opaque constants and ``torch._C._pickle_load_obj`` torchbind objects
(``_load_constants``), retries any failed ``weights_only=True`` load with
``weights_only=False`` (torch/_export/serde/serialize.py, ``deserialize_torch_artifact``,
which also reads the archive's sample inputs), and falls back to that reader for the
legacy layout when anything fails (torch/export/__init__.py, ``load``). Besides the pickles,
the program's JSON reaches ``sympy.sympify`` (an ``eval``) through every symbolic shape
expression, names any ``torch.*`` callable as a node target, and carries guard code that
``ExportedProgram.module()`` ``exec``s.

So without ``trust`` this module reads the archive itself, with ``zipfile`` and ``json``:
it checks the program (operators only from ``torch.ops``, shape expressions from a short
list of sympy names, plain names), builds the tensors from their raw bytes, reads a
pickled tensor only with ``torch.load(weights_only=True)``, never opens the sample inputs,
and refuses, before it unpickles anything, pickled opaque or torchbind constants,
AOTInductor code and the legacy layout. Only then does torch's deserializer rebuild the
graph from the checked JSON and the tensors already built, and the module is made with
``check_guards=False`` so that no guard code from the file is ``exec``'d.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeresnet.errors import CheckpointError, first_line

# torch/export/pt2_archive/constants.py (from torch/csrc/export/pt2_archive_constants.h)
_FORMAT_RECORD = "archive_format"
_FORMAT_VALUE = b"pt2"
_VERSION_RECORD = "archive_version"
_VERSION_VALUE = b"0"
_MODEL = "model"  # torch.export.save writes its program under this name
_PROGRAM = f"models/{_MODEL}.json"
_WEIGHTS_DIR = "data/weights/"
_CONSTANTS_DIR = "data/constants/"
_WEIGHTS_CONFIG = f"{_WEIGHTS_DIR}{_MODEL}_weights_config.json"
_CONSTANTS_CONFIG = f"{_CONSTANTS_DIR}{_MODEL}_constants_config.json"
_AOTI_DIR = "data/aotinductor/"
_TENSOR_CONSTANT = "tensor_"
_CUSTOM_OBJ = "custom_obj_"
_OPAQUE_OBJ = "opaque_obj_"

_TRUST_HINT = "if you trust the file, pass --trust-checkpoint to load it anyway"
_DAMAGED_HINT = "save or download it again"

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


def is_pt2(path: Path) -> bool:
    """Whether ``path`` is a torch.export archive, by its records (not its name).

    ``torch.export.save`` writes ``<root>/archive_format`` (holding ``pt2``) beside
    ``<root>/models/`` and ``<root>/data/weights/``; ``torch.save`` writes
    ``<root>/data.pkl`` and ``torch.jit.save`` ``<root>/data.pkl`` with
    ``<root>/constants.pkl`` and ``<root>/code/``: neither has ``archive_format``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            root = _root(archive.namelist())
            if root is None or f"{root}/{_FORMAT_RECORD}" not in archive.namelist():
                return False
            return archive.read(f"{root}/{_FORMAT_RECORD}").strip() == _FORMAT_VALUE
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        return False


def read_pt2(path: Path, trust: bool = False) -> nn.Module:
    """The program in a ``torch.export.save`` file as a module: eval mode, float32.

    The module's forward takes what the exported one took (for a ResNet, one NCHW float
    tensor). Without ``trust`` nothing in the file is unpickled except through
    ``torch.load(weights_only=True)``, and a file that needs more is refused with a
    ``CheckpointError``; with ``trust`` the file goes to ``torch.export.load``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"model file not found: {path}" if not path.exists() else f"{path} is not a file",
            hint="check the path",
        )
    names = _open_archive(path)
    if trust:
        program = _load_trusted(path)
    else:
        program = _load_safely(path, names)
    return _as_inference_module(program, path, trusted=trust)


# -- the archive ----------------------------------------------------------------------


def _root(names: list[str]) -> str | None:
    """The folder every record of a torch zip lies in (torch names it after the file)."""
    if not names or "/" not in names[0]:
        return None
    root = names[0].split("/", 1)[0]
    return root if all(n.startswith(root + "/") for n in names) else None


def _open_archive(path: Path) -> dict[str, str]:
    """Record name (without the root folder) -> its name in the zip, after checking that
    the file is a whole torch.export archive (every record passes its CRC)."""
    with path.open("rb") as file:
        head = file.read(4)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            damaged = archive.testzip()
            root = _root(names)
            records = {n[len(root) + 1 :]: n for n in names} if root else {}
            fmt = archive.read(records[_FORMAT_RECORD]).strip() if _FORMAT_RECORD in records else None
            version = archive.read(records[_VERSION_RECORD]).strip() if _VERSION_RECORD in records else None
    except zipfile.BadZipFile as error:
        if head == b"PK\x03\x04":  # a zip that lost its end: cut short or overwritten
            raise _damaged(path, error) from None
        raise CheckpointError(
            f"{path} is not a torch.export archive (it is not a zip file)",
            hint="pass a .pt2 file written by torch.export.save",
        ) from None
    except (OSError, EOFError, zipfile.LargeZipFile, ValueError, KeyError) as error:
        raise _damaged(path, error) from None
    if damaged is not None:
        raise _damaged(path, f"record {damaged} fails its checksum")
    if fmt != _FORMAT_VALUE:
        raise CheckpointError(
            f"{path} is not a torch.export archive (it is {_zip_kind(names)}: no archive_format record saying pt2)",
            hint="pass a .pt2 file written by torch.export.save, or load a torch.save or "
            "TorchScript file as a checkpoint",
        )
    if version != _VERSION_VALUE:
        found = (
            "no archive_version record" if version is None else f"archive version {version.decode(errors='replace')!r}"
        )
        raise CheckpointError(
            f"cannot read {path}: the torch.export archive has {found}, and this reader knows version 0",
            hint="export and save the model again with torch.export.save",
        )
    return records


def _zip_kind(names: list[str]) -> str:
    if any(n.endswith("/constants.pkl") for n in names):
        return "a TorchScript archive"
    if any(n.endswith("/data.pkl") for n in names):
        return "a torch.save checkpoint"
    return "a zip archive"


def _damaged(path: Path, error: Exception | str) -> CheckpointError:
    detail = error if isinstance(error, str) else (first_line(error) or type(error).__name__)
    return CheckpointError(f"cannot read {path}: the file is truncated or corrupt ({detail})", hint=_DAMAGED_HINT)


# -- trusted: torch's own loader ------------------------------------------------------


def _load_trusted(path: Path):
    try:
        return torch.export.load(path)
    except Exception as error:  # torch reports a bad archive as many exception types
        raise CheckpointError(
            f"cannot read {path}: torch.export.load failed ({first_line(error) or type(error).__name__})",
            hint=_DAMAGED_HINT,
        ) from None


# -- untrusted: our reader ------------------------------------------------------------


def _load_safely(path: Path, records: dict[str, str]):
    """An ExportedProgram built without unpickling anything but weights_only tensors."""
    _refuse_unsafe_records(path, records)
    with zipfile.ZipFile(path) as archive:

        def read(name: str) -> bytes:
            if name not in records:
                raise CheckpointError(
                    f"cannot read {path}: the torch.export archive has no {name} record",
                    hint=_DAMAGED_HINT,
                )
            return archive.read(records[name])

        doc = _json(path, read(_PROGRAM), _PROGRAM)
        _check_program(path, doc)
        weights_config = _payload_config(path, read(_WEIGHTS_CONFIG), _WEIGHTS_CONFIG)
        constants_config = _payload_config(path, read(_CONSTANTS_CONFIG), _CONSTANTS_CONFIG)
        _refuse_pickled_objects(path, weights_config, constants_config)
        state_dict = _tensors(path, weights_config, _WEIGHTS_DIR, read, "weight")
        constants = _tensors(path, constants_config, _CONSTANTS_DIR, read, "constant")
    return _deserialize(path, doc, state_dict, constants)


def _refuse_unsafe_records(path: Path, records: dict[str, str]) -> None:
    aoti = sorted(n for n in records if n.startswith(_AOTI_DIR))
    if aoti:
        raise CheckpointError(
            f"refused to load {path}: it holds AOTInductor compiled code ({aoti[0]}), which loading would run",
            hint=_TRUST_HINT,
        )
    legacy = [n for n in (f"{_WEIGHTS_DIR}{_MODEL}.pt", f"{_CONSTANTS_DIR}{_MODEL}.pt") if n in records]
    if legacy:
        raise CheckpointError(
            f"refused to load {path}: it stores its tensors in the legacy pickled layout "
            f"({legacy[0]}), which torch.export.load unpickles in full",
            hint="export and save the model again with a current torch, or, if you trust the "
            "file, pass --trust-checkpoint to load it anyway",
        )
    order = records.get("byteorder")
    if order is not None:
        with zipfile.ZipFile(path) as archive:
            written = archive.read(order).strip().decode(errors="replace")
        if written not in ("", sys.byteorder):
            raise CheckpointError(
                f"cannot read {path}: its tensors are stored {written}-endian and this machine "
                f"is {sys.byteorder}-endian",
                hint="save it again on a little-endian machine",
            )


def _json(path: Path, data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _damaged(path, f"{name}: {first_line(error)}") from None


def _payload_config(path: Path, data: bytes, name: str):
    from torch._export.serde import schema
    from torch._export.serde.serialize import _dict_to_dataclass

    doc = _json(path, data, name)
    try:
        config = _dict_to_dataclass(schema.PayloadConfig, doc)
        for key, meta in config.config.items():
            if not isinstance(meta.path_name, str) or not isinstance(meta.use_pickle, bool):
                raise ValueError(f"entry {key!r} has no path_name or use_pickle")
            _check_name(path, key, f"{name} entry")
            _check_name(path, meta.path_name, f"{name} entry")
        return config
    except CheckpointError:
        raise
    except Exception as error:  # a config that does not fit torch's schema
        raise _damaged(path, f"{name}: {first_line(error) or type(error).__name__}") from None


def _refuse_pickled_objects(path: Path, weights_config, constants_config) -> None:
    """Constants that only a full unpickle can rebuild: refused before any is read."""
    for fqn, meta in constants_config.config.items():
        name = meta.path_name
        if name.startswith(_CUSTOM_OBJ):
            found = f"constant {fqn!r} is a pickled torchbind script object ({_CONSTANTS_DIR}{name})"
        elif name.startswith(_OPAQUE_OBJ):
            found = f"constant {fqn!r} is a pickled opaque Python object ({_CONSTANTS_DIR}{name})"
        elif not name.startswith(_TENSOR_CONSTANT):
            found = f"constant {fqn!r} is stored as {_CONSTANTS_DIR}{name}, which is no tensor record"
        else:
            continue
        raise CheckpointError(
            f"refused to load {path}: {found}, and unpickling it could run arbitrary code",
            hint=_TRUST_HINT,
        )


def _tensors(path: Path, config, directory: str, read, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights or constants config, built from their raw bytes.

    Entries that share a record share its storage, as torch's loader keeps them.
    Entries marked ``use_pickle`` (torch pickles tensor subclasses) are read with
    ``torch.load(weights_only=True)`` only, and refused when that is not enough.
    """
    from torch._export.serde.serialize import deserialize_scalar_type

    storages: dict[str, torch.UntypedStorage | None] = {}
    tensors: dict[str, torch.Tensor] = {}
    for fqn, meta in config.config.items():
        record = directory + meta.path_name
        if meta.use_pickle:
            tensors[fqn] = _pickled_tensor(path, read(record), fqn, record, what)
            continue
        tensor_meta = meta.tensor_meta
        try:
            if tensor_meta is None:
                raise ValueError("it has no tensor_meta")
            dtype = deserialize_scalar_type(tensor_meta.dtype)
            sizes = [_int(s, "size") for s in tensor_meta.sizes]
            strides = [_int(s, "stride") for s in tensor_meta.strides]
            offset = _int(tensor_meta.storage_offset, "storage offset")
            if record not in storages:
                data = bytearray(read(record))
                storages[record] = torch.frombuffer(data, dtype=torch.uint8).untyped_storage() if data else None
            storage = storages[record]
            if storage is None:  # torch writes an empty record for an empty tensor
                tensor = torch.zeros(sizes, dtype=dtype)
            else:
                tensor = torch.empty(0, dtype=dtype).set_(storage, offset, sizes, strides)
            if meta.is_param:
                tensor = nn.Parameter(
                    tensor, requires_grad=bool(tensor_meta.requires_grad) and tensor.is_floating_point()
                )
        except CheckpointError:
            raise
        except Exception as error:  # sizes beyond the bytes, an unknown dtype, symbolic sizes
            raise _damaged(path, f"{what} {fqn!r} in {record}: {first_line(error) or type(error).__name__}") from None
        tensors[fqn] = tensor
    return tensors


def _int(value, what: str) -> int:
    if getattr(value, "type", None) != "as_int" or type(value.value) is not int:
        raise ValueError(f"its {what} is not a plain integer")
    return value.value


def _pickled_tensor(path: Path, data: bytes, fqn: str, record: str, what: str) -> torch.Tensor:
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refused a global or an opcode: what torch.export.load would unpickle
        # with weights_only=False, running whatever the pickle names.
        raise CheckpointError(
            f"refused to load {path}: {what} {fqn!r} is marked use_pickle and its record "
            f"{record} holds {_refused_object(error)}, and unpickling it could run arbitrary code",
            hint=_TRUST_HINT,
        ) from None
    except Exception as error:  # not a pickle at all
        raise CheckpointError(
            f"refused to load {path}: {what} {fqn!r} is marked use_pickle but its record {record} "
            f"is no tensor pickle that a weights-only load can read ({first_line(error) or type(error).__name__})",
            hint=_TRUST_HINT,
        ) from None
    if not isinstance(loaded, torch.Tensor):
        raise CheckpointError(
            f"refused to load {path}: {what} {fqn!r} is marked use_pickle and its record {record} "
            f"holds a {type(loaded).__name__}, not a tensor",
            hint=_DAMAGED_HINT,
        )
    return loaded


def _refused_object(error: Exception) -> str:
    text = str(error)
    for marker in ("Unsupported global: GLOBAL ", "GLOBAL "):
        if marker in text:
            return "a pickled " + text.split(marker, 1)[1].split()[0].rstrip(".,:")
    return "Python objects beyond plain tensors"


# -- the program's JSON ---------------------------------------------------------------


def _check_program(path: Path, doc: Any) -> None:
    """Refuse a program whose JSON would reach code: names, operators, shape expressions."""
    if not isinstance(doc, dict) or not isinstance(doc.get("graph_module"), dict):
        raise _damaged(path, f"{_PROGRAM} holds no graph_module")
    allowed = _allowed_non_aten_targets()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in _FORBIDDEN_KINDS and v:
                    _refuse_program(path, f"it passes {_FORBIDDEN_KINDS[k]}")
                if k == "custom_obj_values" and v:
                    _refuse_program(path, "it holds script-object values")
                if k in _FREE_TEXT_KEYS:
                    continue
                _check_name(path, str(k), "a name in the program")
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
            _check_name(path, value, f"the program's {key or 'text'}")

    walk(doc, None)


def _check_name(path: Path, name: str, where: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        _refuse_program(path, f"{where} {name!r:.80} is not a plain name")


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
        _refuse_program(path, f"it calls {target!r:.80}, which is not a registered PyTorch operator")


def _allowed_non_aten_targets() -> set[str]:
    """The Python functions torch's serializer writes for symbolic-shape arithmetic."""
    import operator

    from torch._export.serde.serialize import _SYM_OPS

    return {f"{op.__module__}.{op.__name__}" for op in (*_SYM_OPS, operator.getitem)}


def _check_expr(path: Path, expr: Any) -> None:
    if not isinstance(expr, str) or len(expr) > 4000:
        _refuse_program(path, "a symbolic shape expression is not a short string")
    position = 0
    while position < len(expr):
        match = _EXPR_TOKEN.match(expr, position)
        if match is None:
            _refuse_program(path, f"the symbolic shape expression {expr!r:.80} is not plain arithmetic")
        name = match.group("name")
        if name is not None and name not in _SYMPY_NAMES and not _SYMBOL_NAME.fullmatch(name):
            _refuse_program(path, f"the symbolic shape expression {expr!r:.80} names {name!r}")
        position = match.end()


def _refuse_program(path: Path, found: str):
    raise CheckpointError(
        f"refused to load {path}: {found}, and rebuilding its program could run arbitrary code",
        hint=_TRUST_HINT,
    )


def _deserialize(path: Path, doc: dict, state_dict: dict, constants: dict):
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    doc = dict(doc, guards_code=[])  # never turned into code (see _as_inference_module)
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
                _refuse_program(path, f"its graph has a {node.op} of {target!r:.80}")


# -- the module -----------------------------------------------------------------------

# Operators whose training flag eval() would clear: (overload name, index of the flag).
_TRAINING_FLAGS = {
    "aten::batch_norm": 5,
    "aten::dropout": 2,
    "aten::feature_dropout": 2,
    "aten::alpha_dropout": 2,
    "aten::feature_alpha_dropout": 2,
}


def _as_inference_module(exported, path: Path, trusted: bool) -> nn.Module:
    """``exported.module()`` in eval mode, float32.

    An exported module refuses ``eval()`` (its graph fixed the mode when it was traced), so
    the training flags of batch norm and dropout are cleared in the graph itself; a
    graph that trains in another way is refused.
    """
    try:
        # Trusted files keep their guards; ours never exec guard code from the file.
        module = exported.module() if trusted else exported.module(check_guards=False)
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"cannot read {path}: the exported program does not make a module "
            f"({first_line(error) or type(error).__name__})",
            hint="export and save the model again with this torch version",
        ) from None
    for sub in module.modules():
        changed = False
        graph = getattr(sub, "graph", None)
        for node in graph.nodes if graph is not None else ():
            target = node.target
            if not isinstance(target, torch._ops.OpOverload):
                continue
            name = target._schema.name
            if name in _TRAINING_FLAGS and len(node.args) > _TRAINING_FLAGS[name]:
                index = _TRAINING_FLAGS[name]
                if node.args[index] is True:
                    node.args = (*node.args[:index], False, *node.args[index + 1 :])
                    changed = True
            elif name in ("aten::_native_batch_norm_legit_functional", "aten::native_dropout") or (
                name in ("aten::_native_batch_norm_legit", "aten::native_batch_norm")
                and len(node.args) > 5
                and node.args[5] is True
            ):
                raise CheckpointError(
                    f"cannot use {path} for inference: its program was exported in training "
                    f"mode ({name} updates statistics or drops activations)",
                    hint="export the model after model.eval() and save it again",
                )
        if changed and isinstance(sub, torch.fx.GraphModule):
            sub.recompile()
    nn.Module.train(module, False)  # the flags; the module's own eval() raises
    return module.float()
