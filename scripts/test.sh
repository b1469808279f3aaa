#!/usr/bin/env bash
# Set up (scripts/setup.sh), build, and run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
# ctest lists the tests that skipped (those that need a GPU) after its summary: the summary is
# said again last, and ctest's status is the script's.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j 2 --timeout 900 | tee "$log" || status=$?
echo
grep -E '^[0-9]+% tests passed|^Total Test time' "$log" || true
exit "$status"
