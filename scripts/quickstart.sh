#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: answer Q99 (batch size vs generalization) on
# Fashion-MNIST with the quick preset, about 2 minutes on two CPU cores. It prints each claim's
# verdict and writes results/reports/quick/q099/ (README, plots, the CSVs behind them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR/bin/empiric" answer 99 --preset quick
