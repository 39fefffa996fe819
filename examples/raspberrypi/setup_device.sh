#!/usr/bin/env bash
# Run ON the Raspberry Pi (64-bit Raspberry Pi OS, Python 3.11) or Jetson (JetPack's Python):
# a virtual environment with the benchmark runner and its runtimes, and no torch or TensorFlow.
#   bash setup_device.sh edgeresnet-0.1.0-py3-none-any.whl
set -euo pipefail
WHEEL=${1:?"usage: setup_device.sh edgeresnet-<version>-py3-none-any.whl (built with build_wheel.sh)"}
VENV=${VENV:-$HOME/edgeresnet-runner}
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)  # root (a container, a chroot) has no sudo to ask
$SUDO apt-get install -y python3-venv
python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install "${WHEEL}[runner]"   # LiteRT, OpenVINO (ARM CPU plugin), onnxruntime
# A wheel rebuilt at the same version (a checkout moved on) replaces the one installed: pip
# would otherwise keep the old code, as "already satisfied".
"$VENV/bin/pip" install --force-reinstall --no-deps "$WHEEL"
"$VENV/bin/python" -c "import importlib.util as u; assert not u.find_spec('torch') and not u.find_spec('tensorflow')"
"$VENV/bin/edgeresnet" --version
echo "runner ready: $VENV/bin/python"
