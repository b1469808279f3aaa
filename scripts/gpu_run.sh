#!/usr/bin/env bash
# There (the GPU machine, through the device tool, with .deps carried; made here by
# scripts/pack_gpu.sh): the CUDA tests (which skip elsewhere), the single-model benchmark beside
# the PyTorch peers, the training suite (64 members, with a profile of a window of steps: the
# top kernels per step of one model and of the population), the kernel benchmarks, and a timed
# `empiric answer 99 --preset full`. Writes under $OUT (at most 8 files come back):
#   summary.md   environment, test results and every table
#   tests.log    the CUDA tests' output
#   bench.db     the training suite's and the kernels' records, linked to their questions
#                (merge with `empiric results merge`)
#   answers.db   the answers' trials;  answers.txt their output (every question of ANSWERS)
#   kernels_cuda.json  Google Benchmark's output
#   device run: bash scripts/gpu_run.sh        carry: [".deps"]
# STEPS (default "tests lenet graphs suite kernels answer targets") picks and orders the parts
# (suite_tf32: the training suite again with TF32 matmuls, train.tf32, for empiric and the peers;
# targets: issue 9's GPU targets against what the steps before it measured, scripts/gpu_targets.py;
# gemms: a population step's matmuls one by one in two weight layouts, bench/peers/population_gemms.py);
# ANSWERS (default "99") the questions answered with the full preset, each within ANSWER_LIMIT
# seconds (e.g. "99 76": Q76's 108 schedule trials train as two populations of 54 on a GPU; 97:
# the three chains' rounds train as populations of 9);
# ANSWER_JOBS sets their --jobs (trials at once on the GPU); STEP_LIMIT (240) the seconds any other
# command may run (lenet, REPS runs of six trainings, twice that). Exits 1 when any step failed (each failure is named in summary.md, with its
# log's tail where it has one), 2 for an unknown step (before anything runs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/empiric-gpu}
mkdir -p "$OUT"
STEPS=${STEPS:-tests lenet graphs suite kernels answer targets}
PY=${PY:-python3}
STEP_LIMIT=${STEP_LIMIT:-240}  # seconds any one command of a step may run (a hang costs no more)
for step in $STEPS; do  # a misspelt step was skipped without a word, after a paid start
  case $step in
  tests | lenet | graphs | suite | suite_tf32 | kernels | gemms | answer | targets) ;;
  *)
    echo "gpu_run.sh: STEPS: no step \"$step\"; allowed: tests lenet graphs suite suite_tf32 kernels gemms answer targets" >&2
    exit 2
    ;;
  esac
done
deps=$PWD/.deps/gpu
bin=/tmp/empiric-bin  # the binaries travel xz-packed (scripts/pack_gpu.sh); python unpacks them
$PY - "$deps/bin" "$bin" <<'PY'
import lzma, os, sys
src, dst = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    if f.endswith(".xz"):
        out = os.path.join(dst, f[:-3])
        with lzma.open(os.path.join(src, f)) as i, open(out, "wb") as o:
            o.write(i.read())
        os.chmod(out, 0o755)
PY
summary=$OUT/summary.md
torch_lib=$($PY -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
# (libcudart.so.13 from the wheel's nvidia/cu13 too: the image's toolkit is not to be relied on.)
export LD_LIBRARY_PATH="$torch_lib:$torch_lib/../../nvidia/cu13/lib:$deps/lib:${LD_LIBRARY_PATH:-}"
# The binaries carry absolute paths of the dev checkout (tests find questions/ and the binary
# through them) and the default data directory: make both exist here. The data travels as xz.
mkdir -p /work /usr/share/datasets /tmp/fmnist
[ -e /work/main ] || ln -s "$PWD" /work/main
# Only where this script made the link (the GPU machine): on the dev machine it replaced a fresh
# build with the packed binary. There, a binary left by an earlier call is replaced when it
# differs: the CUDA tests run the CLI at that path.
if [ -L /work/main ]; then
  mkdir -p /work/main/build/bin
  cmp -s "$bin/empiric" /work/main/build/bin/empiric || cp "$bin/empiric" /work/main/build/bin/empiric
fi
$PY - "$deps/data" /tmp/fmnist <<'PY'
import gzip, lzma, os, sys
src, dst = sys.argv[1:]
for f in os.listdir(src):
    if f.endswith(".xz"):
        with lzma.open(os.path.join(src, f)) as i, gzip.open(os.path.join(dst, f[:-3] + ".gz"), "wb", 1) as o:
            o.write(i.read())
PY
[ -e /usr/share/datasets/fashion-mnist ] || ln -s /tmp/fmnist /usr/share/datasets/fashion-mnist

{
  echo "# empiric on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "torch $($PY -c 'import torch; print(torch.__version__)'), $(nproc) CPU cores, $(date -u)"
  sed 's/^/    /' "$deps/STAMP" 2>/dev/null || echo "    (no STAMP: packed before pack_gpu.sh wrote one)"
  echo
} | tee "$summary"

status=0  # 1 when any step failed; each failure is named in the summary
section() { printf '\n## %s\n\n' "$1" | tee -a "$summary"; }
failed() {  # failed NAME RC [LOG]: records a step's failure (and its log's tail) in the summary
  status=1
  echo "**$1 failed** (exit $2)" | tee -a "$summary"
  if [ -n "${3:-}" ] && [ -s "$3" ]; then
    { echo '```'; tail -20 "$3"; echo '```'; } | tee -a "$summary"
  fi
}
timed() {  # timed NAME CMD...: runs CMD, then prints its exit status and wall time
  local t0=$SECONDS
  "${@:2}"
  local rc=$?
  echo "$1: exit $rc, $((SECONDS - t0)) s wall"
  return $rc
}

for step in $STEPS; do
  case $step in
  tests)
    section "CUDA tests"
    for t in core_tests lab_tests; do
      timed "$t" timeout "$STEP_LIMIT" "$bin/$t" --gtest_filter='*Cuda*:*cuda*' >"/tmp/$t.log" 2>&1
      rc=$?
      cat "/tmp/$t.log" >>"$OUT/tests.log"
      echo "$t: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?' "/tmp/$t.log" | tr '\n' ' ')$(tail -1 "/tmp/$t.log" | grep -o ', [0-9]* s wall')" | tee -a "$summary"
      [ "$rc" = 0 ] || failed "$t" "$rc" "/tmp/$t.log"  # (a crash prints no gtest summary)
    done
    grep -E '^\[  FAILED  \]' "$OUT/tests.log" | sort -u | tee -a "$summary"
    ;;
  lenet)
    section "One LeNet-300-100, 3 epochs, batch 128 (scripts/bench_lenet.sh --device cuda)"
    EMPIRIC="$bin/empiric" PY=$PY REPS=${REPS:-2} timed bench_lenet timeout "$((2 * STEP_LIMIT))" \
      scripts/bench_lenet.sh --device cuda 2>&1 | tee -a "$summary"
    rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed bench_lenet "$rc"
    ;;
  suite)
    section "Training suite: 64 members (empiric bench --suite training --device cuda)"
    rm -f /tmp/profile.md  # (an earlier suite's profile must not stand in for this one's)
    EMPIRIC_PYTHON=$PY timed suite timeout "$STEP_LIMIT" "$bin/empiric" --db "$OUT/bench.db" bench --suite training \
      --device cuda --members "${MEMBERS:-64}" --epochs 2 --profile /tmp/profile.md 2>&1 | tee -a "$summary"
    rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed suite "$rc"
    cat /tmp/profile.md >>"$summary" 2>/dev/null  # where a step's time goes: kernels per step
    ;;
  suite_tf32)
    section "Training suite, TF32 matmuls: 64 members (empiric bench --suite training --tf32)"
    EMPIRIC_PYTHON=$PY timed suite_tf32 timeout "$STEP_LIMIT" "$bin/empiric" --db "$OUT/bench.db" bench --suite training \
      --device cuda --members "${MEMBERS:-64}" --epochs 2 --tf32 2>&1 | tee -a "$summary"
    rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed suite_tf32 "$rc"
    ;;
  kernels)
    section "Kernels (kernels_bench, cuda)"
    # Through empiric bench: the records are stored, linked to their questions, and Google
    # Benchmark's report kept for the table.
    timed kernels_bench timeout "$STEP_LIMIT" "$bin/empiric" --db "$OUT/bench.db" bench \
      --binary "$bin/kernels_bench" --filter 'cuda:1' --repetitions 3 \
      --json "$OUT/kernels_cuda.json" >/tmp/kernels_cuda.txt 2>&1
    rc=$?; [ "$rc" = 0 ] || failed kernels_bench "$rc" /tmp/kernels_cuda.txt
    timeout "$STEP_LIMIT" $PY bench/peers/adam_step.py --device cuda >/tmp/adam_peer_cuda.jsonl 2>/tmp/adam_peer_cuda.err
    rc=$?; [ "$rc" = 0 ] || failed adam_step.py "$rc" /tmp/adam_peer_cuda.err
    if [ -s "$OUT/kernels_cuda.json" ]; then
      $PY scripts/kernel_table.py "$OUT/kernels_cuda.json" /tmp/adam_peer_cuda.jsonl 2>&1 | tee -a "$summary"
      rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed kernel_table.py "$rc"
    fi
    ;;
  graphs)
    section "One LeNet-300-100 (configs/fmnist_lenet.json --preset quick): CUDA graphs on and off"
    # Two runs of each, alternating, each into a store of its own (a store that has the trial
    # would skip it).
    for g in auto off auto off; do
      db=$(mktemp -d)/graphs.db
      timeout "$STEP_LIMIT" "$bin/empiric" --db "$db" run configs/fmnist_lenet.json --preset quick --device cuda \
        --no-progress train.cuda_graphs=$g >/tmp/graphs.log 2>&1
      rc=$?; [ "$rc" = 0 ] || { failed "graphs ($g)" "$rc" /tmp/graphs.log; continue; }
      "$bin/empiric" --db "$db" results --format jsonl | $PY -c "
import json, sys
for l in sys.stdin:
    s = json.loads(l)['summary']
    print('train.cuda_graphs=$g', s.get('cuda_graphs'), 'epoch_s %.3f' % (s['compute_s'] / s['epochs']), 'test_acc %.4f' % s['test_acc'])
" 2>&1 | tee -a "$summary"
    done
    ;;
  gemms)
    section "A population step's matmuls, 64 members (bench/peers/population_gemms.py)"
    for tf32 in "" --tf32; do
      timed "gemms$tf32" timeout "$STEP_LIMIT" $PY bench/peers/population_gemms.py --device cuda --members "${MEMBERS:-64}" $tf32 2>&1 | tee -a "$summary"
      rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed "population_gemms.py $tf32" "$rc"
      echo | tee -a "$summary"
    done
    ;;
  targets)
    section "Issue 9's GPU targets (scripts/gpu_targets.py)"
    $PY scripts/gpu_targets.py "$OUT" 2>&1 | tee -a "$summary"
    rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed gpu_targets.py "$rc"
    ;;
  answer)
    jobs=${ANSWER_JOBS:-1}
    for q in ${ANSWERS:-99}; do
      section "empiric answer $q --preset full --device cuda --jobs $jobs (limit ${ANSWER_LIMIT:-200} s)"
      # (One store and one text for every answer: few files come back from $OUT.)
      timed answer$q timeout "${ANSWER_LIMIT:-200}" "$bin/empiric" --db "$OUT/answers.db" answer "$q" \
        --preset full --device cuda --jobs "$jobs" --no-progress 2>&1 | tee /tmp/answer$q.txt | tail -1 | tee -a "$summary"
      rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || failed "answer $q" "$rc"
      cat /tmp/answer$q.txt >>"$OUT/answers.txt"
      grep -E "supported|refuted|inconclusive|trials" /tmp/answer$q.txt | head -30 | tee -a "$summary"
    done
    ;;
  esac
done
# A store left mid-write by a timed-out answer keeps its last transactions in the -wal file:
# folded in, so the .db that comes back is whole and no extra files are counted.
# (The last connection to close removes the -wal and -shm files itself.)
for db in "$OUT"/*.db; do
  [ -e "$db" ] || continue
  $PY -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()" "$db"
done
exit $status
