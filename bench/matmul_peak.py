"""Matmul peak FLOP/s of this machine (fp32 on CPU, bf16 on CUDA), the yardstick for training.

train_throughput.py imports `peak_flops` and reports achieved training FLOP/s as a fraction of
it, measured in the same run (so both see the same machine load and thread count).

    python bench/matmul_peak.py [--size 2048] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from benchkit import parse_args, ratio


def peak_flops(
    size: int = 2048, repeats: int = 10, rounds: int = 3, timer: Callable[[], float] | None = None
) -> float:
    """Best of `rounds` timings of `repeats` square matmuls: on a shared machine the best round
    is the closest to what the hardware can do, which is what a peak is. `timer` defaults to
    wall time; train_throughput passes process CPU time when it measures training that way."""
    timer = timer or time.perf_counter
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(rounds):
        if device == "cuda":
            torch.cuda.synchronize()
        start = timer()
        for _ in range(repeats):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 * repeats / (timer() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    args = parse_args(parser, {"size": 1024})
    flops = peak_flops(args.size)
    threads = torch.get_num_threads()
    print(f"matmul {args.size}x{args.size}: {flops / 1e9:.1f} GFLOP/s on {threads} threads")
    ratio(
        "matmul peak GFLOP/s",
        f"{flops / 1e9:.1f}",
        "-",
        f"{args.size}x{args.size} matmul, {threads} threads: the yardstick for training FLOP/s",
    )


if __name__ == "__main__":
    main()
