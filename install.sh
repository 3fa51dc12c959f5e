#!/usr/bin/env bash
# Set up recon on a fresh Debian/Ubuntu machine: system libraries, a virtual
# environment in .venv, CPU PyTorch, and the package with its test extras.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
# Open3D fails with "libusb-1.0.so.0: cannot open shared object file" without libusb;
# VTK (pyvista) and Open3D need GL/EGL and X render libraries even off-screen.
# chromium and xvfb serve the viewer's browser and real-window tests.
for pkg in libusb-1.0-0 libgl1 libegl1 libxrender1 libxext6 libgomp1 chromium xvfb; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
PY=${PYTHON:-python3}
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then need_apt+=(python3-venv python3-pip); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install.sh: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch==2.13.0 is the CPU build on this project's machines; a bare "torch" would pull several GB of CUDA.
if ! $VPY -c "import torch" >/dev/null 2>&1; then
  $VPY -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
fi
$VPY -m pip install -q -e ".[test,web]" 2>&1 | grep -v "^WARNING: Location" || true
$VPY -c "import recon, open3d, torch, trimesh, pyvista; print('recon', recon.__version__, '| torch', torch.__version__, '| open3d', open3d.__version__)"
