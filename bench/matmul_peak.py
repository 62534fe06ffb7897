"""Matmul peak FLOP/s of this machine (fp32 on CPU, bf16 on CUDA), the yardstick for training.

train_throughput.py reports achieved training FLOP/s (6 * params * tokens for the forward and
backward of the trained path is the usual estimate) as a fraction of this number.

    python bench/matmul_peak.py [--size 2048]
"""

from __future__ import annotations

import argparse
import time

import torch


def peak_flops(size: int = 2048, repeats: int = 10) -> float:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    flops = peak_flops(args.size)
    print(
        f"matmul {args.size}x{args.size}: {flops / 1e9:.1f} GFLOP/s on {torch.get_num_threads()} threads"
    )
    print(
        f"RATIO matmul peak GFLOP/s | {flops / 1e9:.1f} | - | measured yardstick for training FLOP/s"
    )


if __name__ == "__main__":
    main()
