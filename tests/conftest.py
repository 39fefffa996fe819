"""Shared fixtures: where ../shared lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    path = Path(os.environ.get("EDGERESNET_SHARED", REPO.parent / "shared"))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip("fixtures not found: set EDGERESNET_SHARED or place shared/ beside the repository")
    return path


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """Tables come out as a pipe gets them (120 columns), whatever width the test runner's own
    terminal (or pytest-xdist, for its workers) put in COLUMNS; a test that wants a width sets it."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
