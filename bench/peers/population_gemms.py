#!/usr/bin/env python3
"""The matmuls of one population step of LeNet-300-100, one by one, in two weight layouts.

A population of P members stacks its layers' weights; a step runs, per layer, the forward
(`baddbmm`), the weight gradient and (past the first layer) the input gradient, each a batched
matmul over the members. empiric stores the weights as P x in x out ("io": the forward needs no
transposed operand, which was faster on two CPU cores); torch.nn.Linear's layout is P x out x in
("oi"). On a GPU those two layouts give cuBLAS different operand orders, and so different kernels.
This times each matmul in both layouts (CUDA events on a GPU, the wall clock on a CPU; median of
--reps blocks of --iters calls) and prints a Markdown table: microseconds per call and achieved
TFLOP/s, then the sum per step for each layout.

  python3 bench/peers/population_gemms.py --device cuda --members 64 [--tf32]
"""
import argparse

import torch

from timing import median_seconds

LAYERS = [(784, 300), (300, 100), (100, 10)]


def cases(P, B, device):
    """(layer, op, layout, flops, fn) for every matmul of a step in both layouts."""
    g = torch.Generator(device="cpu").manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device)  # noqa: E731
    for i, (fan_in, fan_out) in enumerate(LAYERS):
        x, dy, bias = rand(P, B, fan_in), rand(P, B, fan_out), rand(P, 1, fan_out)
        w_io, w_oi = rand(P, fan_in, fan_out), rand(P, fan_out, fan_in)
        flops = 2 * P * B * fan_in * fan_out
        layer = f"{i + 1} ({fan_in}x{fan_out})"
        yield layer, "forward", "io", flops, lambda x=x, w=w_io, b=bias: torch.baddbmm(b, x, w)
        yield layer, "forward", "oi", flops, lambda x=x, w=w_oi, b=bias: torch.baddbmm(b, x, w.transpose(1, 2))
        yield layer, "weight grad", "io", flops, lambda x=x, dy=dy: torch.bmm(x.transpose(1, 2), dy)
        yield layer, "weight grad", "oi", flops, lambda x=x, dy=dy: torch.bmm(dy.transpose(1, 2), x)
        if i > 0:  # the first layer's input needs no gradient
            yield layer, "input grad", "io", flops, lambda dy=dy, w=w_io: torch.bmm(dy, w.transpose(1, 2))
            yield layer, "input grad", "oi", flops, lambda dy=dy, w=w_oi: torch.bmm(dy, w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--members", type=int, default=None, help="P (default 64 on a GPU, 8 on a CPU)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tf32", action="store_true", help="TF32 matmuls (torch.backends.cuda.matmul.allow_tf32)")
    a = ap.parse_args()
    P = a.members or (64 if torch.device(a.device).type == "cuda" else 8)
    iters = a.iters or (200 if torch.device(a.device).type == "cuda" else 10)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    print(f"population matmuls: {P} members, batch {a.batch}, {a.device}"
          f"{' (TF32)' if a.tf32 else ''}, median of {a.reps} x {iters} calls\n")
    print("| layer | op | layout | us per call | TFLOP/s |\n|---|---|---|---:|---:|")
    total = {"io": 0.0, "oi": 0.0}
    flops_step = 0
    with torch.no_grad():
        for layer, op, layout, flops, fn in cases(P, a.batch, a.device):
            us = median_seconds(fn, a.device, iters, a.reps) * 1e6
            total[layout] += us
            flops_step += flops if layout == "io" else 0
            print(f"| {layer} | {op} | {layout} | {us:,.1f} | {flops / us / 1e6:.2f} |")
    print()
    for layout, us in total.items():
        print(f"step's matmuls, layout {layout}: {us:,.1f} us ({flops_step / us / 1e6:.2f} TFLOP/s)")


if __name__ == "__main__":
    main()
