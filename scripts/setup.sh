#!/usr/bin/env bash
# Installs what empiric needs and builds it. Idempotent: safe to rerun, quick when nothing is missing.
#   scripts/setup.sh            Debian packages, .venv with torch + matplotlib, CMake configure + build
#   EMPIRIC_CUDA=OFF scripts/setup.sh     CPU-only build (no nvcc)
#   BUILD_DIR=build-debug BUILD_TYPE=Debug scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
JOBS=${JOBS:-2}
say() { printf '\n== %s\n' "$*"; }

# 1. Debian packages (only the missing ones; apt-get update only when something is missing).
packages=(cmake ninja-build g++ python3-venv nlohmann-json3-dev libcli11-dev libfmt-dev libsqlite3-dev
          zlib1g-dev googletest libgtest-dev libbenchmark-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. Python: torch (LibTorch comes from its wheel) and matplotlib, in .venv.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, matplotlib, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "installing torch==$TORCH_VERSION and matplotlib into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "torch==$TORCH_VERSION" matplotlib numpy
fi

# 3. Configure (once) and build.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  say "configuring $BUILD_DIR ($BUILD_TYPE, EMPIRIC_CUDA=${EMPIRIC_CUDA:-AUTO})"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DEMPIRIC_CUDA="${EMPIRIC_CUDA:-AUTO}" -DEMPIRIC_PYTHON="$PWD/.venv/bin/python"
fi
say "building ($JOBS jobs)"
cmake --build "$BUILD_DIR" -j "$JOBS"
