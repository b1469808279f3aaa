"""The timing loop the PyTorch Python benchmarks share: CUDA events on a GPU, the wall clock on a
CPU, the median of `reps` blocks of `iters` calls after `warmup` calls."""
import statistics
import time

import torch


def median_seconds(fn, device, iters, reps, warmup=3):
    """Seconds per call of fn(), the median over reps blocks of iters calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if torch.device(device).type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3 / iters)
        else:
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            times.append((time.perf_counter() - t0) / iters)
    return statistics.median(times)
