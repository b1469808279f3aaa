#!/usr/bin/env bash
# Batched population against the same trials one after another, in one session on this machine:
# N LeNet-300-100 members on Fashion-MNIST (configs/fmnist_lenet.json, N seeds), trained with
# train.population=off and then train.population=N. Prints training time (the stored compute_s:
# steps only, no data loading or evaluation), models x epochs per second, the speedup per model and
# the members' test accuracies, so speed is never bought with a different result. Then the same
# members in PyTorch Python (bench/peers/lenet_fmnist.py): a torch.func vmap-stacked ensemble and
# the tensor loop one model after another, in the same session.
#   scripts/bench_population.sh            N=8 EPOCHS=1 BATCH=128 DEVICE=cpu by default
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-8} EPOCHS=${EPOCHS:-1} BATCH=${BATCH:-128} DEVICE=${DEVICE:-cpu}
BIN=${BIN:-build/bin/empiric}
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for mode in off "$N"; do
  "$BIN" --db "$tmp/$mode.db" run configs/fmnist_lenet.json --device "$DEVICE" --no-progress \
    seeds="$N" train.epochs="$EPOCHS" train.batch_size="$BATCH" train.population="$mode" \
    train.checkpoint=false > "$tmp/$mode.log"
done
# (A peer that fails is named with its error's tail; empiric's table is printed all the same.)
peers_failed=0
# (--warmup-steps 0: cold, as the fresh empiric processes above are.)
"$PY" bench/peers/lenet_fmnist.py --epochs "$EPOCHS" --batch "$BATCH" --members "$N" --device "$DEVICE" \
  --warmup-steps 0 --modes ensemble,sequential > "$tmp/peers.jsonl" 2>"$tmp/peers.err" || {
  peers_failed=1
  echo "bench_population.sh: the PyTorch peers failed:" >&2
  tail -5 "$tmp/peers.err" >&2
}
"$PY" - "$tmp" "$N" "$EPOCHS" "$BATCH" "$DEVICE" <<'PY'
import json, sqlite3, sys
tmp, n, epochs, batch, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def load(mode):
    rows = sqlite3.connect(f"{tmp}/{mode}.db").execute("select seed, summary from trials order by seed").fetchall()
    return [(seed, json.loads(s)) for seed, s in rows]
seq, pop = load("off"), load(str(n))
t_seq = sum(s["compute_s"] for _, s in seq)
t_pop = pop[0][1]["population_compute_s"]
print(f"| mode ({device}, {n} x LeNet-300-100, batch {batch}, {epochs} epoch) | training s | models x epochs / s | per-model speedup | mean test acc | largest member difference |")
print("|---|---:|---:|---:|---:|---:|")
acc_s = [s["test_acc"] for _, s in seq]
acc_p = [s["test_acc"] for _, s in pop]
diff = max(abs(a - b) for a, b in zip(acc_s, acc_p))
print(f"| one after another | {t_seq:.2f} | {n * epochs / t_seq:.2f} | 1.00x | {sum(acc_s) / n:.4f} | |")
print(f"| population of {n} | {t_pop:.2f} | {n * epochs / t_pop:.2f} | {t_seq / t_pop:.2f}x | {sum(acc_p) / n:.4f} | {diff:.4f} |")
for line in open(f"{tmp}/peers.jsonl"):
    r = json.loads(line)
    t = r["epoch_s"] * r["epochs"]
    print(f"| {r['peer']} | {t:.2f} | {r['models_epochs_per_s']:.2f} | {t_seq / t:.2f}x | {r['test_acc']:.4f} | |")
PY
exit "$peers_failed"
