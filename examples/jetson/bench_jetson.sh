#!/usr/bin/env bash
# Run on your computer: export the demo ResNet-20 for the Jetson's GPU (TensorRT) and CPU, then
# benchmark every file on the Jetson over SSH.
#   bash bench_jetson.sh nvidia@jetson.local
set -euo pipefail
DEVICE=${1:?"usage: bench_jetson.sh user@jetson"}
REMOTE_PYTHON=${REMOTE_PYTHON:-'~/edgeresnet-runner/bin/python'}
cd "$(dirname "$0")/../.."
.venv/bin/edgeresnet compress --target tensorrt-fp16,tensorrt-int8,tflite-int8,onnx --out runs/jetson --overwrite
# Over --ssh the files go to a fresh directory on the Jetson each time, so each bench builds
# the engines again (the build is the rows' load time); a bench run on the Jetson itself
# caches them in runs/jetson/tensorrt-*/engines/ and starts in a second the next time.
.venv/bin/edgeresnet bench runs/jetson --ssh "$DEVICE" --remote-python "$REMOTE_PYTHON" --json-out runs/jetson/bench-jetson.json
.venv/bin/edgeresnet report runs/jetson --out runs/jetson/comparison
