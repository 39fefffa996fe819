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
then its value), and every field ever declared keeps its slot. Reading it back is the
tests' business (tests/tflite_metadata_reader.py walks the same slots).
"""

from __future__ import annotations

import io
import zipfile

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry every reader looks for
LABELS_FILE = "labels.txt"
# The populator computes this (metadata_version.cc): 1.0.0 unless a field added later is
# used (vocabulary files, subgraph process units, tensor groups, tokenizers, audio).
# Image properties, normalization, stats and axis-label files are all 1.0.0.
MIN_PARSER_VERSION = "1.0.0"

METADATA_ID = b"M001"
_RGB_CHANNELS = 3
# Fixed zip entry attributes so that the same inputs give the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3  # ZipInfo's default create_system depends on the platform that writes it
_ZIP_MODE = 0o644 << 16

# Enum and union values of metadata_schema.fbs.
_RGB = 1  # ColorSpaceType
_GRAYSCALE = 2
_FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # ContentProperties
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
TENSOR_AXIS_LABELS = 2  # AssociatedFileType


class Fields:
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
        Fields.SUBGRAPH,
        {
            Fields.SUBGRAPH_INPUTS: _vector_of_tables(b, [image]),
            Fields.SUBGRAPH_OUTPUTS: _vector_of_tables(b, [scores]),
        },
    )
    root = _end_table(
        b,
        Fields.MODEL,
        {
            Fields.MODEL_NAME: b.CreateString(name),
            Fields.MODEL_DESCRIPTION: b.CreateString(description),
            Fields.MODEL_VERSION: b.CreateString(version),
            Fields.MODEL_SUBGRAPHS: _vector_of_tables(b, [subgraph]),
            Fields.MODEL_AUTHOR: b.CreateString(author),
            Fields.MODEL_LICENSE: b.CreateString(license),
            Fields.MODEL_MIN_PARSER_VERSION: b.CreateString(MIN_PARSER_VERSION),
        },
    )
    b.Finish(root, file_identifier=METADATA_ID)  # readers reject a buffer without "M001"
    return bytes(b.Output())


def _image_tensor(
    b: flatbuffers.Builder, name: str, description: str, mean: list[float], std: list[float], low: float, high: float
) -> int:
    channels = len(mean)  # 3 for RGB, 1 for a grayscale model
    properties = _end_table(b, Fields.IMAGE, {}, {Fields.IMAGE_COLOR_SPACE: _RGB if channels == 3 else _GRAYSCALE})
    normalization = _end_table(
        b,
        Fields.NORMALIZATION,
        {
            Fields.NORMALIZATION_MEAN: _float_vector(b, mean),
            Fields.NORMALIZATION_STD: _float_vector(b, std),
        },
    )
    unit = _end_table(
        b,
        Fields.PROCESS_UNIT,
        {Fields.PROCESS_UNIT_OPTIONS: normalization},
        {Fields.PROCESS_UNIT_TYPE: NORMALIZATION_OPTIONS},
    )
    stats = _end_table(
        b,
        Fields.STATS,
        {
            Fields.STATS_MAX: _float_vector(b, [high] * channels),
            Fields.STATS_MIN: _float_vector(b, [low] * channels),
        },
    )
    return _end_table(
        b,
        Fields.TENSOR,
        {
            Fields.TENSOR_NAME: b.CreateString(name),
            Fields.TENSOR_DESCRIPTION: b.CreateString(description),
            Fields.TENSOR_CONTENT: _content(b, IMAGE_PROPERTIES, properties),
            Fields.TENSOR_PROCESS_UNITS: _vector_of_tables(b, [unit]),
            Fields.TENSOR_STATS: stats,
        },
    )


def _scores_tensor(b: flatbuffers.Builder, name: str, description: str, with_labels: bool) -> int:
    fields = {
        Fields.TENSOR_NAME: b.CreateString(name),
        Fields.TENSOR_DESCRIPTION: b.CreateString(description),
        Fields.TENSOR_CONTENT: _content(b, _FEATURE_PROPERTIES, _end_table(b, Fields.FEATURE, {})),
    }
    if with_labels:  # TENSOR_AXIS_LABELS: label i names score i, which is what classifiers read
        labels = _end_table(
            b,
            Fields.FILE,
            {
                Fields.FILE_NAME: b.CreateString(LABELS_FILE),
                Fields.FILE_DESCRIPTION: b.CreateString("class labels"),
            },
            {Fields.FILE_TYPE: TENSOR_AXIS_LABELS},
        )
        fields[Fields.TENSOR_FILES] = _vector_of_tables(b, [labels])
    return _end_table(b, Fields.TENSOR, fields)


def _content(b: flatbuffers.Builder, kind: int, properties: int) -> int:
    return _end_table(b, Fields.CONTENT, {Fields.CONTENT_PROPERTIES: properties}, {Fields.CONTENT_TYPE: kind})


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
