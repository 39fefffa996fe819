"""The package's shape, enforced: small modules, __init__ files that only re-export, and an
import contract (pyproject.toml, run by `make check`) that fails on an upward import."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edgeresnet"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES = 400


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these along their seams: {long}"


def test_init_files_hold_only_a_docstring_and_re_exports():
    for path in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(path.read_text())
        for index, node in enumerate(tree.body):
            docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            assert docstring or isinstance(node, ast.ImportFrom | ast.Import), (
                f"{path.relative_to(ROOT)} line {node.lineno}: an __init__.py holds a docstring and re-exports only"
            )


def _lint(tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copy, not the installed package
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(tmp_path / "pyproject.toml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def package_copy(tmp_path):
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    shutil.copytree(PACKAGE, tmp_path / "edgeresnet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        # The model zoo reaching up into the pipeline: a cycle in the making.
        ("models/_upward.py", "from edgeresnet.pipeline.api import compress\n", "layers point down"),
        ("export/_upward.py", "def f():\n    from edgeresnet.stages.ptq import ptq\n", "layers point down"),
        # The device side pulling torch in: bench would no longer install on a Pi.
        ("runner/_torch.py", "import torch\n", "bench and report need neither torch nor TensorFlow"),
    ],
)
def test_import_contract_fails_on_an_upward_import(package_copy, module, source, contract):
    assert _lint(package_copy).returncode == 0, "the contract must hold on the package as it is"
    (package_copy / "edgeresnet" / module).write_text(source)
    result = _lint(package_copy)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
