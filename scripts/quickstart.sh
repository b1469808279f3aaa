#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: browse the question behind the first lab and train
# LeNet-300-100 on Fashion-MNIST with the quick preset (seconds on two CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR/bin/empiric" list --section 15
echo
"$BUILD_DIR/bin/empiric" show 99
echo
"$BUILD_DIR/bin/empiric" run configs/fmnist_lenet.json --preset quick
