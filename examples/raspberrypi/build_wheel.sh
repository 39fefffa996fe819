#!/usr/bin/env bash
# Run on your computer, in the repository: the wheel to copy to the device (pure Python, any CPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pip wheel --no-deps --no-build-isolation -w dist . >/dev/null 2>&1 || .venv/bin/python -m pip wheel --no-deps -w dist .
ls dist/edgeresnet-*.whl
