"""Standard TFLite Model Metadata for an exported image classifier.

Why: Android Studio's ML Model Binding and the LiteRT/TFLite Task Library's
``ImageClassifier`` configure themselves from the "TFLITE_METADATA" buffer of a .tflite
file (tflite-support's metadata_schema.fbs): the normalization to apply to pixels, the
colour space, and a ``labels.txt`` packed as a zip appended to the model. Without it an
app developer has to copy mean/std and class names by hand, and gets them wrong.

Why not tflite-support's MetadataPopulator: tflite-support pins protobuf<4, which
conflicts with TensorFlow. So the metadata flatbuffer is written here with the
``flatbuffers`` Builder, using the field slots of metadata_schema.fbs (schema 1.5,
file identifier "M001"), and the zip is laid out as MetadataPopulator lays it out. The
slot numbers below are the schema's field ids: a union field takes two slots (its type,
then its value), and every field ever declared keeps its slot.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
from flatbuffers.table import Table

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry every reader looks for
LABELS_FILE = "labels.txt"
# The populator computes this (metadata_version.cc): 1.0.0 unless a field added later is
# used (vocabulary files, subgraph process units, tensor groups, tokenizers, audio).
# Image properties, normalization, stats and axis-label files are all 1.0.0.
MIN_PARSER_VERSION = "1.0.0"

_MODEL_ID = b"TFL3"
_METADATA_ID = b"M001"
_RGB_CHANNELS = 3
# Fixed zip entry attributes so that the same inputs give the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3  # ZipInfo's default create_system depends on the platform that writes it
_ZIP_MODE = 0o644 << 16

# Enum and union values of metadata_schema.fbs.
_RGB = 1  # ColorSpaceType
_GRAYSCALE = 2
_COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


class _Fields:
    """Number of fields of each metadata table, and the slots (field ids) used here."""

    MODEL = 8
    MODEL_NAME, MODEL_DESCRIPTION, MODEL_VERSION, MODEL_SUBGRAPHS = 0, 1, 2, 3
    MODEL_AUTHOR, MODEL_LICENSE, MODEL_MIN_PARSER_VERSION = 4, 5, 7  # 6: associated_files
    SUBGRAPH = 10
    SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS = 2, 3  # 0: name, 1: description
    TENSOR = 7
    TENSOR_NAME = 0  # 2: dimension_names
    TENSOR_DESCRIPTION, TENSOR_CONTENT, TENSOR_PROCESS_UNITS, TENSOR_STATS, TENSOR_FILES = 1, 3, 4, 5, 6
    CONTENT = 3
    CONTENT_TYPE, CONTENT_PROPERTIES = 0, 1  # the ContentProperties union; 2: range
    FEATURE = 0  # FeatureProperties is an empty table: its presence says "plain scores"
    IMAGE = 2
    IMAGE_COLOR_SPACE = 0  # 1: default_size
    PROCESS_UNIT = 2
    PROCESS_UNIT_TYPE, PROCESS_UNIT_OPTIONS = 0, 1  # the ProcessUnitOptions union
    NORMALIZATION = 2
    NORMALIZATION_MEAN, NORMALIZATION_STD = 0, 1
    STATS = 2
    STATS_MAX, STATS_MIN = 0, 1  # max comes first in the schema
    FILE = 5
    FILE_NAME, FILE_DESCRIPTION, FILE_TYPE = 0, 1, 2  # 3: locale, 4: version


class _ModelFields:
    """Slots of the TFLite model schema (schema.fbs) that read_metadata walks."""

    BUFFERS, METADATA = 4, 6  # 5 is the deprecated metadata_buffer: it keeps its slot
    METADATA_NAME, METADATA_BUFFER = 0, 1
    BUFFER_DATA = 0


def add_metadata(
    model: bytes,
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    license: str,
    input_description: str,
    mean: list[float],
    std: list[float],
    input_min: float,
    input_max: float,
    output_description: str,
    labels: list[str] | None,
    input_name: str = "image",
    output_name: str = "probability",
) -> bytes:
    """Return `model` with standard TFLite metadata and, given `labels`, a packed labels.txt.

    `mean`/`std` are per RGB channel in pixel units (0..255): the Task Library feeds a
    float input (pixel - mean) / std. `input_min`/`input_max` bound the values the input
    tensor takes (recorded per channel as its stats). Existing tensors and buffers are
    kept as they are; only a buffer and a "TFLITE_METADATA" entry are added. Needs
    TensorFlow (imported here: this runs in the conversion child process).
    `input_name`/`output_name` name the tensors in Android Studio's generated wrapper.
    """
    _check_normalization(mean, std)
    metadata = _metadata_flatbuffer(
        name=name,
        description=description,
        version=version,
        author=author,
        license=license,
        input_description=input_description,
        mean=mean,
        std=std,
        input_min=input_min,
        input_max=input_max,
        output_description=output_description,
        with_labels=labels is not None,
        input_name=input_name,
        output_name=output_name,
    )
    with_metadata = _attach_metadata(model, metadata, labels)
    return with_metadata if labels is None else _append_labels(with_metadata, labels)


def read_metadata(source: str | os.PathLike | bytes) -> dict:
    """Read back what add_metadata wrote, from a .tflite path or its bytes.

    Walks the flatbuffers by the same slots, without TensorFlow, so tests and manifests
    can show what an app will see. Floats are float32 in the file; they come back as
    their shortest decimal (123.675, not 123.67500305175781).
    """
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    meta = _metadata_table(data)
    subgraph = _tables(meta, _Fields.MODEL_SUBGRAPHS)[0]
    image, scores = _tables(subgraph, _Fields.SUBGRAPH_INPUTS)[0], _tables(subgraph, _Fields.SUBGRAPH_OUTPUTS)[0]
    labels_file = _labels_file(scores)
    return {
        "name": _string(meta, _Fields.MODEL_NAME),
        "description": _string(meta, _Fields.MODEL_DESCRIPTION),
        "version": _string(meta, _Fields.MODEL_VERSION),
        "author": _string(meta, _Fields.MODEL_AUTHOR),
        "license": _string(meta, _Fields.MODEL_LICENSE),
        "min_parser_version": _string(meta, _Fields.MODEL_MIN_PARSER_VERSION),
        "input": _read_input(image),
        "output": {
            "name": _string(scores, _Fields.TENSOR_NAME),
            "description": _string(scores, _Fields.TENSOR_DESCRIPTION),
            "labels_file": labels_file,
        },
        "labels": _read_labels(data, labels_file) if labels_file else [],
    }


# --- writing the metadata flatbuffer -------------------------------------------------


def _check_normalization(mean: list[float], std: list[float]) -> None:
    # The Task Library broadcasts a single value, but we always know all three, and a
    # zero std would divide by zero on the device rather than here.
    if len(mean) not in (1, _RGB_CHANNELS) or len(std) != len(mean):
        raise ValueError(f"mean and std need one value per channel (RGB or gray), got {mean} and {std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {std}")


def _metadata_flatbuffer(
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    license: str,
    input_description: str,
    mean: list[float],
    std: list[float],
    input_min: float,
    input_max: float,
    output_description: str,
    with_labels: bool,
    input_name: str,
    output_name: str,
) -> bytes:
    b = flatbuffers.Builder(1024)
    image = _image_tensor(b, input_name, input_description, mean, std, input_min, input_max)
    scores = _scores_tensor(b, output_name, output_description, with_labels)
    subgraph = _end_table(
        b,
        _Fields.SUBGRAPH,
        {
            _Fields.SUBGRAPH_INPUTS: _vector_of_tables(b, [image]),
            _Fields.SUBGRAPH_OUTPUTS: _vector_of_tables(b, [scores]),
        },
    )
    root = _end_table(
        b,
        _Fields.MODEL,
        {
            _Fields.MODEL_NAME: b.CreateString(name),
            _Fields.MODEL_DESCRIPTION: b.CreateString(description),
            _Fields.MODEL_VERSION: b.CreateString(version),
            _Fields.MODEL_SUBGRAPHS: _vector_of_tables(b, [subgraph]),
            _Fields.MODEL_AUTHOR: b.CreateString(author),
            _Fields.MODEL_LICENSE: b.CreateString(license),
            _Fields.MODEL_MIN_PARSER_VERSION: b.CreateString(MIN_PARSER_VERSION),
        },
    )
    b.Finish(root, file_identifier=_METADATA_ID)  # readers reject a buffer without "M001"
    return bytes(b.Output())


def _image_tensor(
    b: flatbuffers.Builder, name: str, description: str, mean: list[float], std: list[float], low: float, high: float
) -> int:
    channels = len(mean)  # 3 for RGB, 1 for a grayscale model
    properties = _end_table(b, _Fields.IMAGE, {}, {_Fields.IMAGE_COLOR_SPACE: _RGB if channels == 3 else _GRAYSCALE})
    normalization = _end_table(
        b,
        _Fields.NORMALIZATION,
        {
            _Fields.NORMALIZATION_MEAN: _float_vector(b, mean),
            _Fields.NORMALIZATION_STD: _float_vector(b, std),
        },
    )
    unit = _end_table(
        b,
        _Fields.PROCESS_UNIT,
        {_Fields.PROCESS_UNIT_OPTIONS: normalization},
        {_Fields.PROCESS_UNIT_TYPE: _NORMALIZATION_OPTIONS},
    )
    stats = _end_table(
        b,
        _Fields.STATS,
        {
            _Fields.STATS_MAX: _float_vector(b, [high] * channels),
            _Fields.STATS_MIN: _float_vector(b, [low] * channels),
        },
    )
    return _end_table(
        b,
        _Fields.TENSOR,
        {
            _Fields.TENSOR_NAME: b.CreateString(name),
            _Fields.TENSOR_DESCRIPTION: b.CreateString(description),
            _Fields.TENSOR_CONTENT: _content(b, _IMAGE_PROPERTIES, properties),
            _Fields.TENSOR_PROCESS_UNITS: _vector_of_tables(b, [unit]),
            _Fields.TENSOR_STATS: stats,
        },
    )


def _scores_tensor(b: flatbuffers.Builder, name: str, description: str, with_labels: bool) -> int:
    fields = {
        _Fields.TENSOR_NAME: b.CreateString(name),
        _Fields.TENSOR_DESCRIPTION: b.CreateString(description),
        _Fields.TENSOR_CONTENT: _content(b, _FEATURE_PROPERTIES, _end_table(b, _Fields.FEATURE, {})),
    }
    if with_labels:  # TENSOR_AXIS_LABELS: label i names score i, which is what classifiers read
        labels = _end_table(
            b,
            _Fields.FILE,
            {
                _Fields.FILE_NAME: b.CreateString(LABELS_FILE),
                _Fields.FILE_DESCRIPTION: b.CreateString("class labels"),
            },
            {_Fields.FILE_TYPE: _TENSOR_AXIS_LABELS},
        )
        fields[_Fields.TENSOR_FILES] = _vector_of_tables(b, [labels])
    return _end_table(b, _Fields.TENSOR, fields)


def _content(b: flatbuffers.Builder, kind: int, properties: int) -> int:
    return _end_table(b, _Fields.CONTENT, {_Fields.CONTENT_PROPERTIES: properties}, {_Fields.CONTENT_TYPE: kind})


def _end_table(
    b: flatbuffers.Builder, num_fields: int, refs: dict[int, int], enums: dict[int, int] | None = None
) -> int:
    """Write one table from children built beforehand (flatbuffers cannot nest them).

    `refs` maps slot -> offset of a string, vector or table; `enums` maps slot -> a
    one-byte enum or union type (the schema's byte and ubyte encode 1..127 alike).
    """
    b.StartObject(num_fields)
    for slot, value in (enums or {}).items():
        b.PrependUint8Slot(slot, value, 0)
    for slot, offset in refs.items():
        b.PrependUOffsetTRelativeSlot(slot, offset, 0)
    return b.EndObject()


def _float_vector(b: flatbuffers.Builder, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for value in reversed(values):  # flatbuffers builds back to front
        b.PrependFloat32(value)
    return b.EndVector()


def _vector_of_tables(b: flatbuffers.Builder, tables: list[int]) -> int:
    b.StartVector(4, len(tables), 4)
    for table in reversed(tables):
        b.PrependUOffsetTRelative(table)
    return b.EndVector()


# --- putting it into the model ------------------------------------------------------


def _attach_metadata(model: bytes, metadata: bytes, labels: list[str] | None) -> bytes:
    """Add `metadata` as a new buffer named by a new Model.metadata entry, as the populator does."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    tflite = flatbuffer_utils.read_model_from_bytearray(model)
    _check_model(tflite, labels)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)  # packed as one vector, not byte by byte
    tflite.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tflite.buffers) - 1
    tflite.metadata = [*(tflite.metadata or []), entry]
    return flatbuffer_utils.convert_object_to_bytearray(tflite)


def _check_model(tflite, labels: list[str] | None) -> None:
    """Refuse what the Task Library would refuse on the device, so it fails at export."""
    if any(entry.name == METADATA_NAME.encode() for entry in tflite.metadata or []):
        raise ValueError("the model already has TFLite metadata")
    graph = tflite.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(f"expected one input and one output, got {len(graph.inputs)} and {len(graph.outputs)}")
    channels = graph.tensors[graph.inputs[0]].shape[-1]
    if channels not in (1, _RGB_CHANNELS):
        raise ValueError(f"expected an NHWC RGB or gray image input, got {channels} channels last")
    if labels is None:
        return
    classes = graph.tensors[graph.outputs[0]].shape[-1]
    if len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for {classes} output scores")
    if any("\n" in label or "\r" in label for label in labels):
        raise ValueError("labels cannot contain line breaks: labels.txt has one label per line")


def _append_labels(model: bytes, labels: list[str]) -> bytes:
    """Append labels.txt as a zip after the flatbuffer.

    As MetadataPopulator does: entry offsets are absolute in the file (zipfile records
    fp.tell()), and the entry is stored, not deflated, because the C++ metadata extractor
    the Task Library uses refuses compressed entries ("Expected uncompressed zip archive").
    """
    out = io.BytesIO()
    out.write(model)
    info = zipfile.ZipInfo(LABELS_FILE, date_time=_ZIP_DATE)
    info.create_system = _ZIP_UNIX
    info.external_attr = _ZIP_MODE
    text = "".join(f"{label}\n" for label in labels)
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(info, text.encode("utf-8"), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


# --- reading it back ----------------------------------------------------------------


def _metadata_table(data: bytes) -> Table:
    if not flatbuffers.util.BufferHasIdentifier(data, 0, _MODEL_ID):
        raise ValueError("not a TFLite model (no TFL3 identifier)")
    model = _root(data)
    buffers = _tables(model, _ModelFields.BUFFERS)
    for entry in _tables(model, _ModelFields.METADATA):
        if _string(entry, _ModelFields.METADATA_NAME) == METADATA_NAME:
            index = _scalar(entry, _ModelFields.METADATA_BUFFER, flatbuffers.number_types.Uint32Flags)
            metadata = _bytes(buffers[index], _ModelFields.BUFFER_DATA)
            if not flatbuffers.util.BufferHasIdentifier(metadata, 0, _METADATA_ID):
                raise ValueError(f"{METADATA_NAME} is not a metadata flatbuffer (no M001 identifier)")
            return _root(metadata)
    raise ValueError(f"the model has no {METADATA_NAME}")


def _read_input(image: Table) -> dict:
    content = _table(image, _Fields.TENSOR_CONTENT)
    is_image = content is not None and _byte(content, _Fields.CONTENT_TYPE) == _IMAGE_PROPERTIES
    properties = _table(content, _Fields.CONTENT_PROPERTIES) if is_image else None
    normalization = next(
        (
            _table(unit, _Fields.PROCESS_UNIT_OPTIONS)
            for unit in _tables(image, _Fields.TENSOR_PROCESS_UNITS)
            if _byte(unit, _Fields.PROCESS_UNIT_TYPE) == _NORMALIZATION_OPTIONS
        ),
        None,
    )
    stats = _table(image, _Fields.TENSOR_STATS)
    return {
        "name": _string(image, _Fields.TENSOR_NAME),
        "description": _string(image, _Fields.TENSOR_DESCRIPTION),
        "mean": _floats(normalization, _Fields.NORMALIZATION_MEAN),
        "std": _floats(normalization, _Fields.NORMALIZATION_STD),
        "min": _floats(stats, _Fields.STATS_MIN),
        "max": _floats(stats, _Fields.STATS_MAX),
        "color_space": _COLOR_SPACES.get(_byte(properties, _Fields.IMAGE_COLOR_SPACE)) if properties else None,
    }


def _labels_file(scores: Table) -> str | None:
    for file in _tables(scores, _Fields.TENSOR_FILES):
        if _byte(file, _Fields.FILE_TYPE) == _TENSOR_AXIS_LABELS:
            return _string(file, _Fields.FILE_NAME)
    return None


def _read_labels(data: bytes, name: str) -> list[str]:
    # zipfile finds the archive from its end record, so the flatbuffer before it is skipped.
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        text = archive.read(name).decode("utf-8")
    return text.removesuffix("\n").split("\n") if text else []


def _root(data: bytes) -> Table:
    return Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))


def _field(table: Table, slot: int) -> int:
    """Offset of a field within `table`, 0 when absent (vtable entries are 2 bytes after a 4-byte header)."""
    return table.Offset(4 + 2 * slot)


def _string(table: Table, slot: int) -> str | None:
    offset = _field(table, slot)
    return table.String(table.Pos + offset).decode("utf-8") if offset else None


def _byte(table: Table, slot: int) -> int:
    return _scalar(table, slot, flatbuffers.number_types.Uint8Flags)


def _scalar(table: Table, slot: int, flags) -> int:
    offset = _field(table, slot)
    return table.Get(flags, table.Pos + offset) if offset else 0  # absent means the default, 0


def _table(table: Table | None, slot: int) -> Table | None:
    offset = _field(table, slot) if table is not None else 0
    return Table(table.Bytes, table.Indirect(table.Pos + offset)) if offset else None


def _tables(table: Table, slot: int) -> list[Table]:
    offset = _field(table, slot)
    if not offset:
        return []
    start = table.Vector(offset)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(offset))]


def _floats(table: Table | None, slot: int) -> list[float] | None:
    offset = _field(table, slot) if table is not None else 0
    if not offset:
        return None
    values = table.GetVectorAsNumpy(flatbuffers.number_types.Float32Flags, offset)
    return [float(str(value)) for value in values]  # numpy prints a float32 as its shortest decimal


def _bytes(table: Table, slot: int) -> bytes:
    offset = _field(table, slot)
    start = table.Vector(offset)
    return bytes(table.Bytes[start : start + table.VectorLen(offset)])
