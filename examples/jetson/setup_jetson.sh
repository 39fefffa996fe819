#!/usr/bin/env bash
# Run ON the Jetson (JetPack 6, Ubuntu 22.04, Python 3.10): the benchmark runner in a virtual
# environment that also sees JetPack's TensorRT (its Python bindings are a Debian package,
# not a wheel, so the environment is made with --system-site-packages).
#   bash setup_jetson.sh edgeresnet-0.1.0-py3-none-any.whl
set -euo pipefail
WHEEL=${1:?"usage: setup_jetson.sh edgeresnet-<version>-py3-none-any.whl (built with examples/raspberrypi/build_wheel.sh)"}
VENV=${VENV:-$HOME/edgeresnet-runner}
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
$SUDO apt-get install -y python3-venv python3-libnvinfer   # python3-libnvinfer: TensorRT for JetPack's Python
python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install "${WHEEL}[runner]"   # LiteRT, OpenVINO and onnxruntime for the CPU rows
# A wheel rebuilt at the same version (a checkout moved on) replaces the one installed: pip
# would otherwise keep the old code, as "already satisfied".
"$VENV/bin/pip" install --force-reinstall --no-deps "$WHEEL"
"$VENV/bin/python" -c "import tensorrt; print('TensorRT', tensorrt.__version__)"
# The runner finds the GPU, TensorRT and CUDA's runtime library, or says what is missing.
"$VENV/bin/python" -c "
from edgeresnet.runner.tensorrt import unavailable_reason
why = unavailable_reason()
raise SystemExit(f'TensorRT cannot run here: {why}' if why else 0)"
"$VENV/bin/edgeresnet" targets | grep tensorrt
echo "runner ready: $VENV/bin/python"
