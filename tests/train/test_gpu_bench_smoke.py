"""bench/gpu.py's CPU smoke mode: the 1B shape (cut to 2 layers, real widths and vocabulary)
builds from the config alone, trains LoRA steps with our loop and writes its report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_smoke_on_cpu(tmp_path):
    out = tmp_path / "results-gpu.md"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the CPU path, even on a GPU runner
    args = ["--models", "builtin:random-llama-1b", "--layers", "2", "--seq", "8", "--batch", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), *args, "--steps", "1", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = out.read_text()
    assert "CPU (smoke run, no CUDA)" in report
    row = next(line for line in report.splitlines() if "random-llama-1b (2 layers)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "lora" and float(cells[3]) > 0  # trained tokens per second
    assert 1.0 < float(cells[7]) < 2.5  # plan GiB: 2 layers + 128k x 2048 embeddings in fp32
