"""benchmarks/README.md shows what the JSON in benchmarks/results/ says, not numbers typed by hand."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _tables():
    spec = importlib.util.spec_from_file_location("benchmark_tables", BENCHMARKS / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_rendered_results(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(BENCHMARKS / "README.md", readme)
    _tables().render(readme)
    assert readme.read_text() == (BENCHMARKS / "README.md").read_text(), "run benchmarks/tables.py"


def test_a_table_follows_its_json(tmp_path):
    tables = _tables()
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- table:runner-vs-vendor -->\nstale\n<!-- /table:runner-vs-vendor -->\ny\n")
    tables.render(readme)
    text = readme.read_text()
    assert "stale" not in text and "| tflite-int8 | litert-benchmark |" in text
    assert text.startswith("x\n") and text.endswith("y\n")
