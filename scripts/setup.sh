#!/usr/bin/env bash
# Installs what empiric needs and builds it. Idempotent: safe to rerun, quick when nothing is missing.
#   scripts/setup.sh            Debian packages, .venv with torch + matplotlib, CMake configure + build
#   EMPIRIC_CUDA=OFF scripts/setup.sh     without the CUDA kernels (also where no CUDA toolkit is)
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
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup.sh: missing Debian packages (${missing[*]}), and no sudo: run it as root, or install them first" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. Python: torch (LibTorch comes from its wheel) and matplotlib, in .venv. A .venv without a
#    working pip (made before python3-venv was there, or cut short) is made again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  say "creating .venv"
  python3 -m venv --clear .venv
fi
# (The version as pip compares it: 2.11 is 2.11.0, and a local part such as +cu130 is left out.)
if ! .venv/bin/python -c "
import sys, torch, matplotlib
from packaging.version import Version
v = lambda s: Version(s.split('+')[0])
sys.exit(v(torch.__version__) != v('$TORCH_VERSION'))" 2>/dev/null; then
  say "installing torch==$TORCH_VERSION and matplotlib into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==$TORCH_VERSION" matplotlib numpy
fi

# 3. Configure (when the build folder is new, or was configured with other settings, in another
#    folder, or against another torch) and build.
stamp="$PWD|$BUILD_TYPE|${EMPIRIC_CUDA:-AUTO}|$(.venv/bin/python -c 'import torch; print(torch.__version__)')"
if [ ! -f "$BUILD_DIR/build.ninja" ] || [ "$(cat "$BUILD_DIR/.empiric-configured" 2>/dev/null)" != "$stamp" ]; then
  # A cache made in another folder (a moved or copied checkout) is refused by CMake: start afresh.
  if [ -f "$BUILD_DIR/CMakeCache.txt" ] &&
     ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$PWD" "$BUILD_DIR/CMakeCache.txt"; then
    rm -rf "$BUILD_DIR/CMakeCache.txt" "$BUILD_DIR/CMakeFiles"
  fi
  say "configuring $BUILD_DIR ($BUILD_TYPE, EMPIRIC_CUDA=${EMPIRIC_CUDA:-AUTO})"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DEMPIRIC_CUDA="${EMPIRIC_CUDA:-AUTO}" -DEMPIRIC_PYTHON="$PWD/.venv/bin/python"
  printf '%s\n' "$stamp" > "$BUILD_DIR/.empiric-configured"
fi
say "building ($JOBS jobs)"
cmake --build "$BUILD_DIR" -j "$JOBS"
