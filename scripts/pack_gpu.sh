#!/usr/bin/env bash
# Here (the dev machine): gather what the GPU machine needs into .deps/gpu/ (git-ignored): the
# binaries built here, the libraries they need that its image lacks, and Fashion-MNIST. Its torch
# is the same 2.11.0+cu130, so the binaries run there against its libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
dest=.deps/gpu
rm -rf "$dest" && mkdir -p "$dest/bin" "$dest/lib" "$dest/data"
cp "$BUILD_DIR/bin/empiric" "$BUILD_DIR/tests/core_tests" "$BUILD_DIR/tests/lab_tests" "$dest/bin/"
[ -d "$BUILD_DIR/bench" ] && find "$BUILD_DIR/bench" -maxdepth 1 -type f -executable -exec cp {} "$dest/bin/" \;
for lib in libfmt.so.9 libsqlite3.so.0 libbenchmark.so.1debian; do
  [ -e "/usr/lib/x86_64-linux-gnu/$lib" ] && cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$dest/lib/"
done
cp -r /usr/share/datasets/fashion-mnist "$dest/data/"
du -sh "$dest"
