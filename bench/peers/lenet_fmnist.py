#!/usr/bin/env python3
"""The same LeNet-300-100 Fashion-MNIST training as configs/fmnist_lenet.json, written in PyTorch
Python the way a PyTorch user would, for side-by-side timing with `empiric run`.

Modes:
  dataloader  TensorDataset + DataLoader(shuffle=True): the plain eager loop most code uses
  tensor      the whole dataset as tensors, batches as index slices of a permutation (what empiric does)

Prints one JSON line per mode: epoch time (training only), samples/s, final test accuracy.
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


def run(mode, x, y, xt, yt, dev, args):
    torch.manual_seed(args.seed)
    model = lenet().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    steps_per_epoch = math.ceil(len(x) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / total, 1))))
    loss_fn = nn.CrossEntropyLoss()
    if mode == "dataloader":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=args.batch, shuffle=True)
    train_s = 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        if mode == "dataloader":
            batches = ((xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)) for xb, yb in loader)
        else:
            perm = torch.randperm(len(x), device=dev)
            batches = ((x[idx], y[idx]) for idx in perm.split(args.batch))
        for xb, yb in batches:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
            sched.step()
        sync(dev)
        train_s += time.perf_counter() - t0
    return {"peer": f"pytorch-python-{mode}", "epochs": args.epochs, "batch_size": args.batch,
            "epoch_s": train_s / args.epochs, "samples_per_s": len(x) * args.epochs / train_s,
            "test_acc": accuracy(model, xt, yt), "threads": torch.get_num_threads(), "torch": torch.__version__}


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
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load(args.data, args.validation, args.seed)
    for mode in args.modes.split(","):
        # The plain loop keeps the data on the host and copies each batch, as DataLoader code does;
        # the tensor mode keeps the whole dataset on the device.
        dev = torch.device(args.device)
        x, y, xt, yt = data if mode == "dataloader" else [t.to(dev) for t in data]
        print(json.dumps(run(mode, x, y, xt.to(dev), yt.to(dev), dev, args)), flush=True)


if __name__ == "__main__":
    main()
