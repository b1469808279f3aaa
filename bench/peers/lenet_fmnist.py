#!/usr/bin/env python3
"""The same LeNet-300-100 Fashion-MNIST training as configs/fmnist_lenet.json, written in PyTorch
Python the way a PyTorch user would, for side-by-side timing with `empiric run`.

Modes:
  dataloader  TensorDataset + DataLoader(shuffle=True): the plain eager loop most code uses
  tensor      the whole dataset as tensors, batches as index slices of a permutation (what empiric does)
  compile     the tensor loop with torch.compile(model); epoch time from the second epoch on (the
              first compiles; its time is reported as compile_epoch_s)
  ensemble    --members models (seeds seed..seed+members-1) stacked with torch.func.stack_module_state
              and trained as one by vmap over functional_call, each member with its own data order
              (what a PyTorch user writes for an ensemble; empiric's train.population is the same idea)
  sequential  the same members trained one after another with the tensor loop (the ensemble's baseline)
  graphs      the tensor loop with the whole step (forward, backward, SGD with momentum) captured once
              as a CUDA graph and replayed, the batch fed through a static index buffer and the LR
              through a device tensor: what empiric's train.cuda_graphs does, written in PyTorch
              (on a CPU the same step runs eagerly, to check its arithmetic against the tensor loop)

Prints one JSON line per mode: epoch time (training only), samples/s, final test accuracy.
Before the first mode a throwaway model takes --warmup-steps (20) untimed steps on the device (the
cuBLAS handle, kernels loaded on first use, the allocator's first blocks), as empiric's suite warms
up before it times; the random state is restored after it, so the modes train as they would
without it. Timed against a fresh `empiric run` process, which pays those costs in its own timed
steps, pass --warmup-steps 0 (scripts/bench_lenet.sh and bench_population.sh do): cold against cold.
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic == 0x803:
        n, r, c = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, r, c)
    return np.frombuffer(data, np.uint8, offset=8)


def load(root, validation, seed):
    x = torch.tensor(read_idx(f"{root}/train-images-idx3-ubyte.gz"), dtype=torch.float32) / 255
    y = torch.tensor(read_idx(f"{root}/train-labels-idx1-ubyte.gz"), dtype=torch.int64)
    xt = torch.tensor(read_idx(f"{root}/t10k-images-idx3-ubyte.gz"), dtype=torch.float32) / 255
    yt = torch.tensor(read_idx(f"{root}/t10k-labels-idx1-ubyte.gz"), dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm[validation:]], y[perm[validation:]]
    mean, std = x.mean(), x.std(unbiased=False)
    return (x - mean) / std, y, (xt - mean) / std, yt


def lenet():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    correct = sum((model(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum().item() for i in range(0, len(x), 2000))
    model.train()
    return correct / len(x)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def cosine(total):
    return lambda s: 0.5 * (1 + math.cos(math.pi * min(s / total, 1)))


def run_ensemble(x, y, xt, yt, dev, args):
    from torch.func import functional_call, stack_module_state, vmap
    m = args.members
    models = []
    for i in range(m):
        torch.manual_seed(args.seed + i)
        models.append(lenet().to(dev))
    params, buffers = stack_module_state(models)
    base = lenet().to("meta")

    def one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    batched = vmap(one)
    opt = torch.optim.SGD(params.values(), lr=args.lr, momentum=0.9)
    steps_per_epoch = math.ceil(len(x) / args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine(steps_per_epoch * args.epochs))
    gens = [torch.Generator(device="cpu").manual_seed(args.seed + i) for i in range(m)]
    train_s = 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(len(x), generator=g) for g in gens]).to(dev)
        for lo in range(0, len(x), args.batch):
            idx = perms[:, lo:lo + args.batch]
            xb, yb = x[idx], y[idx]  # members x batch x ...
            opt.zero_grad()
            out = batched(params, buffers, xb)
            loss = nn.functional.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none")
            loss.view(m, -1).mean(1).sum().backward()
            opt.step()
            sched.step()
        sync(dev)
        train_s += time.perf_counter() - t0
    accs = []
    with torch.no_grad():
        for i in range(m):
            p = {k: v[i] for k, v in params.items()}
            correct = sum((functional_call(base, (p, {}), (xt[j:j + 2000],)).argmax(1) == yt[j:j + 2000]).sum().item()
                          for j in range(0, len(xt), 2000))
            accs.append(correct / len(xt))
    return {"peer": f"pytorch-python-ensemble{m}", "members": m, "epochs": args.epochs, "batch_size": args.batch,
            "epoch_s": train_s / args.epochs, "models_epochs_per_s": m * args.epochs / train_s,
            "test_acc": sum(accs) / m, "threads": torch.get_num_threads(), "torch": torch.__version__}


def run_graphs(x, y, xt, yt, dev, args):
    torch.manual_seed(args.seed)
    model = lenet().to(dev)
    params = list(model.parameters())
    bufs = [torch.zeros_like(p) for p in params]  # (torch's SGD: the first step's buffer is the gradient)
    lr = torch.zeros((), device=dev)
    loss_fn = nn.CrossEntropyLoss()

    def step(idx):
        loss = loss_fn(model(x.index_select(0, idx)), y.index_select(0, idx))
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_mul_(bufs, 0.9)
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, torch._foreach_mul(bufs, -lr))

    steps_per_epoch = math.ceil(len(x) / args.batch)
    total = steps_per_epoch * args.epochs
    schedule = cosine(total)
    graph, static_idx, capture_s = None, None, 0.0
    if dev.type == "cuda":
        # Warm up on a side stream (as torch.cuda.graphs' docs ask), capture, then put the weights
        # and buffers back: the warm-up steps do not train the model, but their time is counted.
        t0 = time.perf_counter()
        saved = [t.detach().clone() for t in params + bufs]
        static_idx = torch.arange(args.batch, device=dev)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(static_idx)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(static_idx)
        with torch.no_grad():
            for t, v in zip(params + bufs, saved):
                t.copy_(v)
        sync(dev)
        capture_s = time.perf_counter() - t0
    epoch_times, k = [], 0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), device=dev)
        for idx in perm.split(args.batch):
            lr.fill_(args.lr * schedule(k))  # (a kernel, no host sync)
            if graph is not None and len(idx) == args.batch:
                static_idx.copy_(idx)
                graph.replay()
            else:  # the last, smaller batch (and every batch on a CPU): the same step, eagerly
                step(idx)
            k += 1
        sync(dev)
        epoch_times.append(time.perf_counter() - t0)
    # The warm-up and capture count as training time, as they do in empiric's compute_s (its
    # capture falls in its first epoch's steps).
    epoch_s = (sum(epoch_times) + capture_s) / len(epoch_times)
    return {"peer": "pytorch-python-graphs" + ("" if graph is not None else "-eager-on-cpu"),
            "epochs": args.epochs, "batch_size": args.batch, "epoch_s": epoch_s,
            "samples_per_s": len(x) / epoch_s, "capture_s": capture_s,
            "test_acc": accuracy(model, xt, yt), "threads": torch.get_num_threads(), "torch": torch.__version__}


def warm_up(x, y, dev, batch, steps=20):
    """One-time costs paid untimed: a throwaway model's steps, the random state left as it was."""
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        model = lenet().to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xs, ys = x[:batch * steps].to(dev), y[:batch * steps].to(dev)
        for xb, yb in zip(xs.split(batch), ys.split(batch)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        sync(dev)


def run(mode, x, y, xt, yt, dev, args):
    if mode == "graphs":
        return run_graphs(x, y, xt, yt, dev, args)
    if mode == "ensemble":
        return run_ensemble(x, y, xt, yt, dev, args)
    if mode == "sequential":
        rows = [run("tensor", x, y, xt, yt, dev, argparse.Namespace(**{**vars(args), "seed": args.seed + i}))
                for i in range(args.members)]
        total = sum(r["epoch_s"] * r["epochs"] for r in rows)
        return {"peer": f"pytorch-python-sequential{args.members}", "members": args.members, "epochs": args.epochs,
                "batch_size": args.batch, "epoch_s": total / args.epochs,
                "models_epochs_per_s": args.members * args.epochs / total,
                "test_acc": sum(r["test_acc"] for r in rows) / len(rows), "threads": torch.get_num_threads(),
                "torch": torch.__version__}
    torch.manual_seed(args.seed)
    model = lenet().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    step_model = torch.compile(model) if mode == "compile" else model
    steps_per_epoch = math.ceil(len(x) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine(total))
    loss_fn = nn.CrossEntropyLoss()
    if mode == "dataloader":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=args.batch, shuffle=True)
    epoch_times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        if mode == "dataloader":
            batches = ((xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)) for xb, yb in loader)
        else:
            perm = torch.randperm(len(x), device=dev)
            batches = ((x[idx], y[idx]) for idx in perm.split(args.batch))
        for xb, yb in batches:
            opt.zero_grad()
            loss_fn(step_model(xb), yb).backward()
            opt.step()
            sched.step()
        sync(dev)
        epoch_times.append(time.perf_counter() - t0)
    # torch.compile spends its first epoch compiling: its steady epoch time is from the second on.
    timed = epoch_times[1:] if mode == "compile" and len(epoch_times) > 1 else epoch_times
    epoch_s = sum(timed) / len(timed)
    row = {"peer": f"pytorch-python-{mode}", "epochs": args.epochs, "batch_size": args.batch,
           "epoch_s": epoch_s, "samples_per_s": len(x) / epoch_s,
           "test_acc": accuracy(model, xt, yt), "threads": torch.get_num_threads(), "torch": torch.__version__}
    if mode == "compile":
        row["compile_epoch_s"] = epoch_times[0]
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--validation", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--modes", default="dataloader,tensor")
    p.add_argument("--members", type=int, default=8, help="models in the ensemble and sequential modes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tf32", action="store_true", help="on a GPU, TF32 matmuls (as empiric's train.tf32)")
    p.add_argument("--warmup-steps", type=int, default=20,
                   help="untimed steps of a throwaway model first (0: none, as a fresh `empiric run` has)")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load(args.data, args.validation, args.seed)
    if args.warmup_steps > 0:
        warm_up(data[0], data[1], torch.device(args.device), args.batch, args.warmup_steps)
    for mode in args.modes.split(","):
        # The plain loop keeps the data on the host and copies each batch, as DataLoader code does;
        # the tensor mode keeps the whole dataset on the device.
        dev = torch.device(args.device)
        x, y, xt, yt = data if mode == "dataloader" else [t.to(dev) for t in data]
        print(json.dumps(run(mode, x, y, xt.to(dev), yt.to(dev), dev, args)), flush=True)


if __name__ == "__main__":
    main()
