#!/usr/bin/env bash
# One LeNet-300-100 Fashion-MNIST training (configs/fmnist_lenet.json, batch 128, 3 epochs), timed in
# empiric (with the fused optimizer, its default, and with torch::optim) and in the PyTorch Python peers (bench/peers/lenet_fmnist.py) in the same session, each
# repeated REPS times; prints the median training time per epoch and the test accuracy of each.
#   scripts/bench_lenet.sh [--device cpu|cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-}
[ "$DEVICE" = "--device" ] && DEVICE=$2 || DEVICE=cpu
REPS=${REPS:-3}
EMPIRIC=${EMPIRIC:-build/bin/empiric}
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for i in $(seq "$REPS"); do
  "$EMPIRIC" --db "$tmp/r$i.db" run configs/fmnist_lenet.json --preset quick --device "$DEVICE" --no-progress >/dev/null 2>&1
  "$EMPIRIC" --db "$tmp/r$i.db" results --format jsonl >>"$tmp/empiric.jsonl"
  "$EMPIRIC" --db "$tmp/t$i.db" run configs/fmnist_lenet.json optim.impl=torch --preset quick --device "$DEVICE" --no-progress >/dev/null 2>&1
  "$EMPIRIC" --db "$tmp/t$i.db" results --format jsonl >>"$tmp/empiric_torch.jsonl"
  "$PY" bench/peers/lenet_fmnist.py --epochs 3 --device "$DEVICE" --modes dataloader,tensor,compile \
    >>"$tmp/peers.jsonl" 2>/dev/null
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
base = statistics.median(e for e, _ in rows["empiric"])
print(f"| implementation ({device}) | epoch s (median of {len(rows['empiric'])}) | samples/s | test acc | epoch time vs empiric |")
print("|---|---:|---:|---:|---:|")
for name, r in rows.items():
    e = statistics.median(x for x, _ in r)
    acc = statistics.median(a for _, a in r)
    print(f"| {name} | {e:.3f} | {55000 / e:,.0f} | {acc:.4f} | {e / base:.2f}x |")
PY
