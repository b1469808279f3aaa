#!/usr/bin/env bash
# Here (the dev machine): gather what the GPU machine needs into .deps/gpu/ (git-ignored): the
# binaries built here (stripped, xz-packed), the libraries they need that its image lacks, and Fashion-MNIST
# recompressed with xz (the working tree and this folder travel together under 64 MiB). Its torch
# is the same 2.11.0+cu130, so the binaries run there against its libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
dest=.deps/gpu
rm -rf "$dest" && mkdir -p "$dest/bin" "$dest/lib" "$dest/data"
for b in "$BUILD_DIR/bin/empiric" "$BUILD_DIR/tests/core_tests" "$BUILD_DIR/tests/lab_tests" \
         $(find "$BUILD_DIR/bench" -maxdepth 1 -type f -executable 2>/dev/null); do
  strip -o "$dest/bin/$(basename "$b")" "$b"
  xz -9 -T2 "$dest/bin/$(basename "$b")"  # unpacked there by scripts/gpu_run.sh
done
for lib in libfmt.so.9 libsqlite3.so.0 libbenchmark.so.1debian; do
  [ -e "/usr/lib/x86_64-linux-gnu/$lib" ] && cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$dest/lib/"
done
src=/usr/share/datasets/fashion-mnist
for f in "$src"/*.gz; do
  zcat "$f" | xz -9e -T2 >"$dest/data/$(basename "$f" .gz).xz"
done
du -sh "$dest"
# What travels: tracked files and untracked ones git does not ignore, and $dest (carry). Over the
# device tool's 64 MiB, a run is refused after the machine has started: fail here instead.
# (Files deleted but still tracked are not there to travel: only those that exist are counted.)
tree=0
while IFS= read -r -d '' f; do
  if [ -f "$f" ]; then tree=$((tree + $(stat -c %s "$f"))); fi
done < <(git ls-files -co --exclude-standard -z)
total=$(( (tree + $(du -sb "$dest" | cut -f1)) / 1048576 ))
echo "working tree $(( tree / 1048576 )) MiB + $dest: $total MiB (limit 64)"
if [ "$total" -ge 64 ]; then
  echo "pack_gpu.sh: $total MiB would not travel (the device tool takes 64 MiB): shrink the tree" >&2
  exit 1
fi
# Which code the GPU will measure: printed there by gpu_run.sh.
{ echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!reports' || echo ' (with uncommitted changes)')"
  echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  readelf -d "$BUILD_DIR/bin/empiric" | grep -q 'libcudart' && echo "build with CUDA kernels" ||
    echo "build WITHOUT CUDA kernels (EMPIRIC_CUDA=OFF or no nvcc): --device cuda is refused"
} >"$dest/STAMP"
cat "$dest/STAMP"
