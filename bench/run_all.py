"""Run every benchmark, print one table of ratios, write bench/results.md.

Each bench script measures ours against a reference in the same run and prints, besides its own
tables, machine-readable lines

    RATIO <name> | <value> | <target> | <what is compared>

which this script collects. Nothing here is timed in tests: numbers depend on the machine, so
they are printed with the machine's description and the date.

    python bench/run_all.py [--quick] [--only train,eval,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (script, quick args, full args)
BENCHES = {
    "matmul": ("matmul_peak.py", [], []),
    "train": ("train_throughput.py", ["--model", "tiny"], ["--model", "smollm2"]),
    "eval": ("eval_throughput.py", ["--prompts", "16", "--max-new-tokens", "16"], []),
    "swap": ("adapter_swap.py", ["--repeats", "3"], ["--repeats", "5"]),
    "plan": ("plan_scale.py", ["--commits", "50", "--repeat", "2"], []),
}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), GPU: {gpu}, Python {platform.python_version()}"
    )


def run(name: str, quick: bool) -> tuple[list[list[str]], str, float]:
    script, quick_args, full_args = BENCHES[name]
    cmd = [sys.executable, str(HERE / script), *(quick_args if quick else full_args)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    seconds = time.perf_counter() - start
    rows = [
        [cell.strip() for cell in line.removeprefix("RATIO ").split("|")]
        for line in proc.stdout.splitlines()
        if line.startswith("RATIO ")
    ]
    if proc.returncode != 0:
        rows.append([f"{name} FAILED (exit {proc.returncode})", "-", "-", proc.stderr[-300:]])
    return rows, proc.stdout, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI smoke)")
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(BENCHES))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    table = ["| benchmark | ratio | target | compared |", "|---|---:|---|---|"]
    details = []
    for name in names:
        print(f"== {name} ==", flush=True)
        rows, output, seconds = run(name, args.quick)
        print(output, flush=True)
        table += ["| " + " | ".join(row) + " |" for row in rows]
        details.append(f"### {name} ({seconds:.0f} s)\n\n```\n{output.strip()}\n```\n")
    header = (
        f"# Benchmark results\n\n{dt.date.today().isoformat()} on {machine()}\n\n"
        "Every ratio compares ours with a reference measured in the same run on the same data.\n"
    )
    text = header + "\n" + "\n".join(table) + "\n\n## Details\n\n" + "\n".join(details)
    (HERE / "results.md").write_text(text)
    print("\n" + "\n".join(table))
    print(f"\nwrote {HERE / 'results.md'}")


if __name__ == "__main__":
    main()
