#!/usr/bin/env bash
# Measures every table of benchmarks/README.md again on this machine, then renders them.
# Hours on 2 cores: the QAT recipes train (see each script's docstring for its time).
# Pass --quick to skip the training recipes (ptq-int8 only: about 30 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
recipes=ptq-int8,qat-int8,prune-distill-qat-int8
[[ "${1:-}" == "--quick" ]] && recipes=ptq-int8
$PY benchmarks/runner_vs_vendor.py
$PY benchmarks/scaling.py
$PY benchmarks/targets_vs_raw.py --recipes "$recipes"
$PY benchmarks/training.py
$PY benchmarks/tables.py
