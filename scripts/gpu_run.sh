#!/usr/bin/env bash
# There (the GPU machine, through the device tool, with .deps carried): runs the tests (the CUDA
# ones included, which skip elsewhere) and the training benchmarks, and writes a table to $OUT.
#   device run: bash scripts/gpu_run.sh        carry: [".deps"]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/empiric-gpu}
mkdir -p "$OUT"
PY=${PY:-python3}
deps=$PWD/.deps/gpu
torch_lib=$($PY -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib:$deps/lib:${LD_LIBRARY_PATH:-}"
# The binaries carry absolute paths of the dev checkout (tests find questions/ and the binary
# through them) and the default data directory: make both exist here.
mkdir -p /work /usr/share/datasets
[ -e /work/main ] || ln -s "$PWD" /work/main
mkdir -p /work/main/build/bin && cp "$deps/bin/empiric" /work/main/build/bin/empiric 2>/dev/null
[ -e /usr/share/datasets/fashion-mnist ] || ln -s "$deps/data/fashion-mnist" /usr/share/datasets/fashion-mnist

{
  echo "# empiric on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "torch: $($PY -c 'import torch; print(torch.__version__)')"
  date -u
} | tee "$OUT/env.txt"

status=0
# ONLY=answer: only `empiric answer 99 --preset quick` on the GPU (the claims path end to end).
if [ "${ONLY:-}" = answer ]; then
  "$deps/bin/empiric" --db "$OUT/q99.db" answer 99 --preset quick --device cuda --no-progress 2>&1 | tee "$OUT/answer99.txt"
  exit "${PIPESTATUS[0]}"
fi
# ONLY=run: `empiric run $RUN_ARGS --device cuda` into $OUT/run.db (merge it here with
# `empiric results merge`); trials finish one by one, so a run cut off by the time limit keeps them.
if [ "${ONLY:-}" = run ]; then
  # shellcheck disable=SC2086
  "$deps/bin/empiric" --db "$OUT/run.db" run $RUN_ARGS --device cuda --no-progress 2>&1 | tee "$OUT/run.txt"
  exit "${PIPESTATUS[0]}"
fi
# ONLY=kernels skips the tests and the training benchmark.
[ "${ONLY:-}" = kernels ] || for t in core_tests lab_tests; do
  "$deps/bin/$t" --gtest_output="json:$OUT/$t.json" >"$OUT/$t.log" 2>&1 || status=1
  echo "$t: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/$t.log" | tr '\n' ' ')"
done

[ "${ONLY:-}" = kernels ] || EMPIRIC="$deps/bin/empiric" PY=$PY REPS=${REPS:-3} scripts/bench_lenet.sh --device cuda | tee "$OUT/bench_lenet_cuda.md"
# Populations on the GPU: 64 LeNet-300-100s one after another and as one batched model, beside the
# PyTorch peers (vmap ensemble, sequential), stored in $OUT/bench.db (issue 9's 20x target).
[ "${ONLY:-}" = kernels ] || EMPIRIC_PYTHON=$PY "$deps/bin/empiric" --db "$OUT/bench.db" bench \
  --suite training --device cuda --members 64 --epochs 2 2>&1 | tee "$OUT/training_suite_cuda.md"

# Kernels: empiric's CUDA kernels beside torch::optim and the copy bandwidth (same process), then
# the PyTorch Python peer (AdamW(fused=True) + mask multiply) in the same session.
"$deps/bin/kernels_bench" --benchmark_filter='cuda:1' --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_out="$OUT/kernels_cuda.json" --benchmark_out_format=json >"$OUT/kernels_cuda.txt" 2>&1
$PY bench/peers/adam_step.py --device cuda >"$OUT/adam_peer_cuda.jsonl"
$PY scripts/kernel_table.py "$OUT/kernels_cuda.json" "$OUT/adam_peer_cuda.jsonl" | tee "$OUT/kernels_cuda.md"
exit $status
