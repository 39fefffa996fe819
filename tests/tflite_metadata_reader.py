"""Read back the TFLite Model Metadata that edgeresnet.export.tflite.metadata writes.

What Android Studio and the Task Library will find in a .tflite file, read without
TensorFlow by walking the same flatbuffer slots the writer fills (metadata_schema.fbs;
the model's own schema.fbs for where the metadata buffer is). Only the tests read
metadata back, so the reader lives with them.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import flatbuffers
from flatbuffers.table import Table

from edgeresnet.export.tflite.metadata import (
    IMAGE_PROPERTIES,
    METADATA_ID,
    METADATA_NAME,
    NORMALIZATION_OPTIONS,
    TENSOR_AXIS_LABELS,
    Fields,
)

_MODEL_ID = b"TFL3"
_COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}  # ColorSpaceType


class _ModelFields:
    """Slots of the TFLite model schema (schema.fbs) that read_metadata walks."""

    BUFFERS, METADATA = 4, 6  # 5 is the deprecated metadata_buffer: it keeps its slot
    METADATA_NAME, METADATA_BUFFER = 0, 1
    BUFFER_DATA = 0


def read_metadata(source: str | os.PathLike | bytes) -> dict:
    """Read back what add_metadata wrote, from a .tflite path or its bytes.

    Walks the flatbuffers by the same slots, without TensorFlow, so that the tests see what
    an app will see. Floats are float32 in the file; they come back as
    their shortest decimal (123.675, not 123.67500305175781).
    """
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    meta = _metadata_table(data)
    subgraph = _tables(meta, Fields.MODEL_SUBGRAPHS)[0]
    image, scores = _tables(subgraph, Fields.SUBGRAPH_INPUTS)[0], _tables(subgraph, Fields.SUBGRAPH_OUTPUTS)[0]
    labels_file = _labels_file(scores)
    return {
        "name": _string(meta, Fields.MODEL_NAME),
        "description": _string(meta, Fields.MODEL_DESCRIPTION),
        "version": _string(meta, Fields.MODEL_VERSION),
        "author": _string(meta, Fields.MODEL_AUTHOR),
        "license": _string(meta, Fields.MODEL_LICENSE),
        "min_parser_version": _string(meta, Fields.MODEL_MIN_PARSER_VERSION),
        "input": _read_input(image),
        "output": {
            "name": _string(scores, Fields.TENSOR_NAME),
            "description": _string(scores, Fields.TENSOR_DESCRIPTION),
            "labels_file": labels_file,
        },
        "labels": _read_labels(data, labels_file) if labels_file else [],
    }


def _metadata_table(data: bytes) -> Table:
    if not flatbuffers.util.BufferHasIdentifier(data, 0, _MODEL_ID):
        raise ValueError("not a TFLite model (no TFL3 identifier)")
    model = _root(data)
    buffers = _tables(model, _ModelFields.BUFFERS)
    for entry in _tables(model, _ModelFields.METADATA):
        if _string(entry, _ModelFields.METADATA_NAME) == METADATA_NAME:
            index = _scalar(entry, _ModelFields.METADATA_BUFFER, flatbuffers.number_types.Uint32Flags)
            metadata = _bytes(buffers[index], _ModelFields.BUFFER_DATA)
            if not flatbuffers.util.BufferHasIdentifier(metadata, 0, METADATA_ID):
                raise ValueError(f"{METADATA_NAME} is not a metadata flatbuffer (no M001 identifier)")
            return _root(metadata)
    raise ValueError(f"the model has no {METADATA_NAME}")


def _read_input(image: Table) -> dict:
    content = _table(image, Fields.TENSOR_CONTENT)
    is_image = content is not None and _byte(content, Fields.CONTENT_TYPE) == IMAGE_PROPERTIES
    properties = _table(content, Fields.CONTENT_PROPERTIES) if is_image else None
    normalization = next(
        (
            _table(unit, Fields.PROCESS_UNIT_OPTIONS)
            for unit in _tables(image, Fields.TENSOR_PROCESS_UNITS)
            if _byte(unit, Fields.PROCESS_UNIT_TYPE) == NORMALIZATION_OPTIONS
        ),
        None,
    )
    stats = _table(image, Fields.TENSOR_STATS)
    return {
        "name": _string(image, Fields.TENSOR_NAME),
        "description": _string(image, Fields.TENSOR_DESCRIPTION),
        "mean": _floats(normalization, Fields.NORMALIZATION_MEAN),
        "std": _floats(normalization, Fields.NORMALIZATION_STD),
        "min": _floats(stats, Fields.STATS_MIN),
        "max": _floats(stats, Fields.STATS_MAX),
        "color_space": _COLOR_SPACES.get(_byte(properties, Fields.IMAGE_COLOR_SPACE)) if properties else None,
    }


def _labels_file(scores: Table) -> str | None:
    for file in _tables(scores, Fields.TENSOR_FILES):
        if _byte(file, Fields.FILE_TYPE) == TENSOR_AXIS_LABELS:
            return _string(file, Fields.FILE_NAME)
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
