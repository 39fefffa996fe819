#!/usr/bin/env bash
# Run on your computer, in the repository: the wheel to copy to the device (pure Python, any CPU).
# DIST: where the wheel goes (default dist/, git-ignored, as is the build/ setuptools leaves).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
DIST=${DIST:-dist}
"$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$DIST" . >/dev/null 2>&1 || "$PYTHON" -m pip wheel --no-deps -w "$DIST" .
ls "$DIST"/edgeresnet-*.whl
