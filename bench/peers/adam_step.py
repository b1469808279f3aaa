#!/usr/bin/env python3
"""The masked Adam step in PyTorch Python, for side-by-side runs with kernels_bench's BM_FusedAdam:
torch.optim.AdamW(fused=True), PyTorch's fastest step on a GPU and on the CPU alike (foreach where a
build has no fused kernel for the device), followed by a separate mask multiply
(torch._foreach_mul_), on the same shapes: LeNet-300-100's six tensors and ten 1M tensors.
Time per step: CUDA events on a GPU, the wall clock on the CPU; median of `--reps` blocks.
Prints one JSON line per case."""
import argparse
import json

import torch

from timing import median_seconds

SHAPES = {"lenet": [784 * 300, 300, 300 * 100, 100, 100 * 10, 10], "10M": [1 << 20] * 10}


def bench(device, shape, masked, iters, reps):
    sizes = SHAPES[shape]
    params = [torch.randn(n, device=device, requires_grad=True) for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    masks = [torch.bernoulli(torch.full((n,), 0.8, device=device)) for n in sizes]
    try:
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0, fused=True)
        opt.step()  # (a device without a fused kernel says so here, not in the timed loop)
        fused = True
    except RuntimeError:
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0, foreach=True)
        fused = False

    def step():
        opt.step()
        if masked:
            with torch.no_grad():
                torch._foreach_mul_(params, masks)

    t = median_seconds(step, device, iters, reps, warmup=5)
    n = sum(sizes)
    return {"peer": f"pytorch-AdamW({'fused' if fused else 'foreach'}){'+mask' if masked else ''}", "device": device,
            "shape": shape, "params": n, "time_s": t, "bytes_per_s": n * (7 + masked) * 4 / t, "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    for shape in SHAPES:
        for masked in (0, 1):
            print(json.dumps(bench(args.device, shape, masked, args.iters, args.reps)), flush=True)


if __name__ == "__main__":
    main()
