"""The package version, written once: pyproject.toml reads it, the artifacts' metadata cite it."""

__version__ = "0.1.0"
