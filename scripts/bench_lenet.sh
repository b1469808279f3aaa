#!/usr/bin/env bash
# One LeNet-300-100 Fashion-MNIST training (configs/fmnist_lenet.json, batch 128, 3 epochs), timed in
# empiric (with the fused optimizer, its default, and with torch::optim) and in the PyTorch Python peers (bench/peers/lenet_fmnist.py) in the same session, each
# repeated REPS times; prints the median training time per epoch and the test accuracy of each.
# A part that fails (the compile peer needs a C++ toolchain) is named on stderr with its log's
# tail; the table takes every row the others wrote, and the script then exits 1.
#   scripts/bench_lenet.sh [--device cpu|cuda]
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-}
[ "$DEVICE" = "--device" ] && DEVICE=$2 || DEVICE=cpu
REPS=${REPS:-3}
EMPIRIC=${EMPIRIC:-build/bin/empiric}
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
part() {  # part NAME CMD...: runs CMD with its stderr kept; a failure is reported, not fatal
  "${@:2}" 2>"$tmp/part.err"
  local rc=$?
  if [ "$rc" != 0 ]; then
    failures=$((failures + 1))
    echo "bench_lenet.sh: $1 failed (exit $rc):" >&2
    tail -5 "$tmp/part.err" >&2
  fi
  return $rc
}
touch "$tmp/empiric.jsonl" "$tmp/empiric_torch.jsonl" "$tmp/peers.jsonl"

for i in $(seq "$REPS"); do
  part "empiric run $i" "$EMPIRIC" --db "$tmp/r$i.db" run configs/fmnist_lenet.json --preset quick \
    --device "$DEVICE" --no-progress >/dev/null &&
    "$EMPIRIC" --db "$tmp/r$i.db" results --format jsonl >>"$tmp/empiric.jsonl"
  part "empiric optim.impl=torch run $i" "$EMPIRIC" --db "$tmp/t$i.db" run configs/fmnist_lenet.json \
    optim.impl=torch --preset quick --device "$DEVICE" --no-progress >/dev/null &&
    "$EMPIRIC" --db "$tmp/t$i.db" results --format jsonl >>"$tmp/empiric_torch.jsonl"
  modes="dataloader tensor compile"
  [ "$DEVICE" = cuda ] && modes="$modes graphs"  # (the step captured as a CUDA graph, as empiric's)
  for mode in $modes; do  # (each peer apart: one failing keeps the others)
    # (--warmup-steps 0: the empiric runs above are fresh processes that pay their one-time costs
    # in their timed steps; the peers, warmed up, would be timed warm against them.)
    part "peer $mode run $i" "$PY" bench/peers/lenet_fmnist.py --epochs 3 --device "$DEVICE" \
      --warmup-steps 0 --modes "$mode" >>"$tmp/peers.jsonl"
  done
done
"$PY" - "$tmp" "$DEVICE" <<'PY'
import json, statistics, sys
tmp, device = sys.argv[1], sys.argv[2]
rows = {"empiric": [], "empiric optim.impl=torch": []}
for name, path in (("empiric", "empiric.jsonl"), ("empiric optim.impl=torch", "empiric_torch.jsonl")):
    for l in open(f"{tmp}/{path}"):
        s = json.loads(l)["summary"]
        rows[name].append((s["compute_s"] / s["epochs"], s["test_acc"]))
for l in open(f"{tmp}/peers.jsonl"):
    d = json.loads(l)
    rows.setdefault(d["peer"], []).append((d["epoch_s"], d["test_acc"]))
base = statistics.median(e for e, _ in rows["empiric"]) if rows["empiric"] else None
print(f"| implementation ({device}) | epoch s (median of runs) | runs | samples/s | test acc | epoch time vs empiric |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    if not r:
        print(f"| {name} | failed | 0 | - | - | - |")
        continue
    e = statistics.median(x for x, _ in r)
    acc = statistics.median(a for _, a in r)
    ratio = f"{e / base:.2f}x" if base else "-"
    print(f"| {name} | {e:.3f} | {len(r)} | {55000 / e:,.0f} | {acc:.4f} | {ratio} |")
print()
print("(pytorch-python-compile: its steady epochs, from the second on; the first compiles."
      " pytorch-python-graphs: every epoch, its warm-up and capture counted in them, as empiric's.)")
PY
[ "$failures" = 0 ] || exit 1
