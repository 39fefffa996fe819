"""Fuzzing the two readers of untrusted text: recipes (YAML) and manifests (JSON).

Whatever the bytes, each either returns a valid object or raises EdgeResNetError (the one
line the CLI prints); any other exception is a crash the user would see as a traceback.
The suite runs 300 generated cases per test; `make fuzz` runs 10,000 each (EDGERESNET_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeresnet.errors import EdgeResNetError
from edgeresnet.manifest import read_manifest
from edgeresnet.recipes import load_recipe
from edgeresnet.stages.registry import config_classes as _config_classes

EXAMPLES = int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "300"))
CASES = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
pytestmark = pytest.mark.fuzz

# Words a recipe is made of, so that generated files get past the first check often.
CONFIGS = _config_classes()
WORDS = sorted({"name", "description", "targets", "stages", *CONFIGS,
                *(key for config in CONFIGS.values() for key in config.model_fields),
                "tflite-int8", "openvino-int8", "coreml-w8a8", "auto", "tflite", "sgd", "adamw", "bf16", "cosine"})
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), inner,
                                                 max_size=4)), max_leaves=12)
documents = st.dictionaries(st.sampled_from(WORDS), values, max_size=5)


SCRATCH = Path(tempfile.mkdtemp(prefix="edgeresnet-fuzz-"))  # one file, rewritten per case: cheaper than a folder each


def _recipe_outcome(text: str, overrides: list[str]) -> None:
    path = SCRATCH / "recipe.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_recipe(path, overrides)
    except EdgeResNetError as error:
        assert error.one_line() and "\n" not in error.one_line()


@CASES
@given(documents, st.lists(st.from_regex(r"[a-z_]{1,12}\.[a-z_]{1,16}=[^\n]{0,10}", fullmatch=True), max_size=2))
def test_structured_recipes_fail_only_with_a_clear_error(document, overrides):
    _recipe_outcome(yaml.safe_dump(document, allow_unicode=True), overrides)


@CASES
@given(st.text(max_size=300))
def test_arbitrary_recipe_text_fails_only_with_a_clear_error(text):
    _recipe_outcome(text, [])


@pytest.fixture(scope="module")
def manifest_json(tmp_path_factory):
    from edgeresnet.cli import main

    out = tmp_path_factory.mktemp("artifact") / "run"
    main.main(["export", "--target", "onnx", "--limit", "4", "--out", str(out)], prog_name="edgeresnet")
    return json.loads((out / "onnx" / "manifest.json").read_text())


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@CASES
@given(data=st.data())
def test_mutated_manifests_fail_only_with_a_clear_error(manifest_json, data):
    manifest = json.loads(json.dumps(manifest_json))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in _paths(manifest) if p]))
        parent = manifest
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values)
    text = json.dumps(manifest) if data.draw(st.integers(0, 9)) else data.draw(st.text(max_size=200))
    path = SCRATCH / "manifest.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_manifest(path)
    except EdgeResNetError as error:
        assert "\n" not in error.one_line()
