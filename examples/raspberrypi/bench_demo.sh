#!/usr/bin/env bash
# Run on your computer: export the demo ResNet-20, then benchmark it on the device over SSH.
#   bash bench_demo.sh pi@raspberrypi.local
set -euo pipefail
DEVICE=${1:?"usage: bench_demo.sh user@device"}
REMOTE_PYTHON=${REMOTE_PYTHON:-'~/edgeresnet-runner/bin/python'}
cd "$(dirname "$0")/../.."
.venv/bin/edgeresnet compress --target tflite-int8,tflite-fp32,openvino-int8,openvino-fp32 --out runs/demo --overwrite
.venv/bin/edgeresnet bench runs/demo --ssh "$DEVICE" --remote-python "$REMOTE_PYTHON" --threads 4
.venv/bin/edgeresnet report runs/demo --out runs/demo/comparison
