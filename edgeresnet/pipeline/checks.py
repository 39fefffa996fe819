"""Checks of what the user typed that need neither torch nor the data: made first, so that a
wrong path fails at once (the CLI's fast errors, benchmarks/cli_latency.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeResNetError


def check_model_path(model: object) -> None:
    """A model file that is not there is the first thing to say, before data and before torch loads."""
    if isinstance(model, (str, Path)) and not Path(model).exists():
        raise EdgeResNetError(f"model file not found: {model}", "check the path")
