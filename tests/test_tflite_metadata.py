"""TFLite Model Metadata: read back, checked against the standard schema, and harmless to the model.

The round trip alone cannot catch a wrong field slot (writer and reader share them), so
test_layout_matches_standard_reader walks the metadata with vtable offsets written out
from tflite-support's generated schema code and compares with the JSON that
tflite-support 0.4.4's MetadataDisplayer printed for a file made with these arguments.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
litert = pytest.importorskip("ai_edge_litert.interpreter")

import flatbuffers  # noqa: E402  (after the skips: it comes with TensorFlow)
from flatbuffers.table import Table  # noqa: E402

from edgeresnet.export.tflite.metadata import add_metadata  # noqa: E402

from tflite_metadata_reader import read_metadata  # noqa: E402

LABELS = ["cat", "dog", "Ünïcødé 猫", "bird with space"]
ARGS = dict(
    name="TinyNet", description="A tiny test classifier", version="v1", author="edgeresnet",
    license="Apache-2.0", input_description="RGB image", mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], input_min=-2.1179, input_max=2.64,
    output_description="class scores", labels=LABELS,
)

# What MetadataDisplayer.get_metadata_json() printed for add_metadata(model, **ARGS)
# (tflite-support's MetadataPopulator, given the same content, printed the same JSON);
# the tensor names were added after that check, in the schema's TensorMetadata.name slot.
DISPLAYER_JSON = """{
  "name": "TinyNet", "description": "A tiny test classifier", "version": "v1",
  "subgraph_metadata": [{
    "input_tensor_metadata": [{
      "name": "image",
      "description": "RGB image",
      "content": {"content_properties_type": "ImageProperties", "content_properties": {"color_space": "RGB"}},
      "process_units": [{"options_type": "NormalizationOptions",
                         "options": {"mean": [123.675003, 116.279999, 103.529999], "std": [58.395, 57.119999, 57.375]}}],
      "stats": {"max": [2.64, 2.64, 2.64], "min": [-2.1179, -2.1179, -2.1179]}
    }],
    "output_tensor_metadata": [{
      "name": "probability",
      "description": "class scores",
      "content": {"content_properties_type": "FeatureProperties", "content_properties": {}},
      "associated_files": [{"name": "labels.txt", "description": "class labels", "type": "TENSOR_AXIS_LABELS"}]
    }]
  }],
  "author": "edgeresnet", "license": "Apache-2.0", "min_parser_version": "1.0.0"
}"""


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    """A tiny NHWC RGB classifier with 4 classes, as fp32 and as full-integer int8."""
    tf.keras.utils.set_random_seed(0)
    image = tf.keras.Input((8, 8, 3), batch_size=1)
    x = tf.keras.layers.Conv2D(5, 3, padding="same", activation="relu")(image)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(image, tf.keras.layers.Dense(4, activation="softmax")(x))
    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()

    samples = np.random.default_rng(0).standard_normal((8, 1, 8, 8, 3)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return {"fp32": fp32, "int8": converter.convert()}


def test_round_trip(models, tmp_path):
    data = add_metadata(models["fp32"], **ARGS)
    expected = {
        "name": "TinyNet", "description": "A tiny test classifier", "version": "v1", "author": "edgeresnet",
        "license": "Apache-2.0", "min_parser_version": "1.0.0",
        "input": {
            "name": "image", "description": "RGB image", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
            "min": [-2.1179] * 3, "max": [2.64] * 3, "color_space": "RGB",
        },
        "output": {"name": "probability", "description": "class scores", "labels_file": "labels.txt"},
        "labels": LABELS,
    }
    assert read_metadata(data) == expected
    (tmp_path / "model.tflite").write_bytes(data)
    assert read_metadata(tmp_path / "model.tflite") == expected
    assert read_metadata(str(tmp_path / "model.tflite")) == expected


def test_layout_matches_standard_reader(models):
    metadata = _metadata_buffer(add_metadata(models["fp32"], **ARGS))
    assert flatbuffers.util.BufferHasIdentifier(metadata, 0, b"M001")
    root = Table(metadata, flatbuffers.encode.Get(flatbuffers.packer.uoffset, metadata, 0))
    assert _as_json(root, "ModelMetadata") == _float32(json.loads(DISPLAYER_JSON))


def test_labels_file_is_packed_like_the_populator(models):
    data = add_metadata(models["fp32"], **ARGS)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (entry,) = archive.infolist()
        text = archive.read("labels.txt")
    assert text == "cat\ndog\nÜnïcødé 猫\nbird with space\n".encode("utf-8")
    # The Task Library's C++ extractor refuses compressed entries; offsets are absolute.
    assert entry.compress_type == zipfile.ZIP_STORED
    assert entry.date_time == (1980, 1, 1, 0, 0, 0)
    assert data[entry.header_offset : entry.header_offset + 4] == b"PK\x03\x04"


def test_deterministic(models):
    assert add_metadata(models["int8"], **ARGS) == add_metadata(models["int8"], **ARGS)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_model_unchanged(models, precision):
    from tensorflow.lite.tools import flatbuffer_utils

    original = models[precision]
    data = add_metadata(original, **ARGS)
    image = np.random.default_rng(1).standard_normal((1, 8, 8, 3)).astype(np.float32)
    if precision == "int8":
        image = np.clip(image * 40, -128, 127).astype(np.int8)
    assert _run(data, image).tobytes() == _run(original, image).tobytes()

    before = flatbuffer_utils.read_model_from_bytearray(original)
    after = flatbuffer_utils.read_model_from_bytearray(data)
    assert [_data(b) for b in after.buffers[:-1]] == [_data(b) for b in before.buffers]
    assert [(m.name, m.buffer) for m in after.metadata[:-1]] == [(m.name, m.buffer) for m in before.metadata]
    assert (after.metadata[-1].name, after.metadata[-1].buffer) == (b"TFLITE_METADATA", len(after.buffers) - 1)


def test_without_labels(models):
    data = add_metadata(models["fp32"], **{**ARGS, "labels": None})
    assert not zipfile.is_zipfile(io.BytesIO(data))
    assert b"labels.txt" not in data  # no associated file recorded either
    meta = read_metadata(data)
    assert meta["output"] == {"name": "probability", "description": "class scores", "labels_file": None}
    assert meta["labels"] == []
    assert meta["input"]["mean"] == [123.675, 116.28, 103.53]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": LABELS[:3]}, "3 labels for 4 output scores"),
        ({"labels": ["a", "b\nc", "d", "e"]}, "line breaks"),
        ({"std": [1.0, 0.0, 1.0]}, "positive"),
        ({"mean": [0.5, 0.5]}, "one value per channel"),
    ],
)
def test_refuses_what_the_device_would_refuse(models, change, message):
    with pytest.raises(ValueError, match=message):
        add_metadata(models["fp32"], **{**ARGS, **change})


def test_refuses_a_second_metadata(models):
    with pytest.raises(ValueError, match="already has TFLite metadata"):
        add_metadata(add_metadata(models["fp32"], **ARGS), **ARGS)


# --- an independent reader ----------------------------------------------------------

# Every field of the tables used, with its vtable offset (4 + 2 * field id) as in
# tflite-support 0.4.4's metadata_schema_py_generated.py (schema 1.5.0). Kinds: a table
# name, [table] for a vector of tables, or a scalar kind; "present" marks a field this
# test does not decode, so that writing into a wrong slot still shows up.
SCHEMA = {
    "ModelMetadata": {
        "name": (4, "string"), "description": (6, "string"), "version": (8, "string"),
        "subgraph_metadata": (10, ["SubGraphMetadata"]), "author": (12, "string"), "license": (14, "string"),
        "associated_files": (16, ["AssociatedFile"]), "min_parser_version": (18, "string"),
    },
    "SubGraphMetadata": {
        "name": (4, "string"), "description": (6, "string"),
        "input_tensor_metadata": (8, ["TensorMetadata"]), "output_tensor_metadata": (10, ["TensorMetadata"]),
        "associated_files": (12, ["AssociatedFile"]), "input_process_units": (14, ["ProcessUnit"]),
        "output_process_units": (16, ["ProcessUnit"]), "input_tensor_groups": (18, "present"),
        "output_tensor_groups": (20, "present"), "custom_metadata": (22, "present"),
    },
    "TensorMetadata": {
        "name": (4, "string"), "description": (6, "string"), "dimension_names": (8, "present"),
        "content": (10, "Content"), "process_units": (12, ["ProcessUnit"]), "stats": (14, "Stats"),
        "associated_files": (16, ["AssociatedFile"]),
    },
    "Content": {
        "content_properties_type": (4, "ContentProperties"), "content_properties": (6, "union"), "range": (8, "present"),
    },
    "ImageProperties": {"color_space": (4, "ColorSpaceType"), "default_size": (6, "present")},
    "FeatureProperties": {},
    "ProcessUnit": {"options_type": (4, "ProcessUnitOptions"), "options": (6, "union")},
    "NormalizationOptions": {"mean": (4, "floats"), "std": (6, "floats")},
    "Stats": {"max": (4, "floats"), "min": (6, "floats")},
    "AssociatedFile": {
        "name": (4, "string"), "description": (6, "string"), "type": (8, "AssociatedFileType"),
        "locale": (10, "string"), "version": (12, "string"),
    },
}
ENUMS = {
    "ContentProperties": {1: "FeatureProperties", 2: "ImageProperties", 3: "BoundingBoxProperties", 4: "AudioProperties"},
    "ProcessUnitOptions": {1: "NormalizationOptions", 2: "ScoreCalibrationOptions", 3: "ScoreThresholdingOptions"},
    "ColorSpaceType": {1: "RGB", 2: "GRAYSCALE"},
    "AssociatedFileType": {1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS"},
}


def _as_json(table: Table, kind: str) -> dict:
    """The table as flatc's JSON would show it: present fields only, enums by name."""
    fields = SCHEMA[kind]
    out: dict = {}
    for name, (voffset, field_kind) in fields.items():
        offset = table.Offset(voffset)
        if not offset:
            continue
        at = table.Pos + offset
        if isinstance(field_kind, list):
            start = table.Vector(offset)
            out[name] = [_as_json(Table(table.Bytes, table.Indirect(start + 4 * i)), field_kind[0])
                         for i in range(table.VectorLen(offset))]
        elif field_kind == "string":
            out[name] = table.String(at).decode("utf-8")
        elif field_kind == "floats":
            out[name] = table.GetVectorAsNumpy(flatbuffers.number_types.Float32Flags, offset).tolist()
        elif field_kind in ENUMS:
            out[name] = ENUMS[field_kind][table.Get(flatbuffers.number_types.Uint8Flags, at)]
        elif field_kind == "union":  # its type is the field just before
            out[name] = _as_json(Table(table.Bytes, table.Indirect(at)), out[list(out)[-1]])
        elif field_kind == "present":
            out[name] = "present"
        else:
            out[name] = _as_json(Table(table.Bytes, table.Indirect(at)), field_kind)
    vtable_size = table.Get(flatbuffers.number_types.VOffsetTFlags, table.Pos - table.Get(
        flatbuffers.number_types.SOffsetTFlags, table.Pos))
    assert vtable_size <= 4 + 2 * len(fields), f"{kind} has a field beyond the schema's"
    return out


def _float32(tree):
    """The displayer prints float32 values rounded; compare them as float32."""
    if isinstance(tree, dict):
        return {key: _float32(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_float32(value) for value in tree]
    return float(np.float32(tree)) if isinstance(tree, float) else tree


def _metadata_buffer(data: bytes) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(data)
    (entry,) = [m for m in model.metadata if m.name == b"TFLITE_METADATA"]
    return model.buffers[entry.buffer].data.tobytes()


def _data(buffer) -> bytes | None:
    return None if buffer.data is None else bytes(buffer.data)


def _run(model: bytes, image: np.ndarray) -> np.ndarray:
    interpreter = litert.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
