"""Run every benchmark, print one table of ratios, write bench/results.md.

Each bench script measures ours against a reference in the same run and prints, besides its own
tables, machine-readable lines

    RATIO <name> | <value> | <target> | <what is compared>

which this script collects. Nothing here is timed in tests: numbers depend on the machine, so
they are printed with the machine's description and the date. A bench that fails, times out or
prints no RATIO line gets a FAILED row; the others still run and the table is still written.

    python bench/run_all.py               # full suite, ~25 min on 2 quiet CPU cores -> results.md
    python bench/run_all.py --quick       # every script on the tiny model -> results-quick.md
    python bench/run_all.py --only train,pull
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (script, full args); quick mode passes --quick to every script instead
BENCHES = {
    "matmul": ("matmul_peak.py", []),
    "train": ("train_throughput.py", ["--model", "smollm2", "--steps", "3"]),
    "eval": ("eval_throughput.py", []),
    "swap": ("adapter_swap.py", ["--repeats", "5"]),
    "plan": ("plan_scale.py", ["--repeat", "3"]),
    "prefix": ("prefix_cache.py", ["--model", "smollm2", "--steps", "10"]),
    "rollback": ("rollback_vs_retrain.py", ["--model", "smollm2", "--steps", "10"]),
    "pull": ("pull_cache.py", ["--model", "smollm2", "--steps", "10", "--repeats", "5"]),
    "fleet": ("fleet_scale.py", ["--sizes", "10,100,1000", "--base-gib", "4"]),
    "serve": ("serve.py", ["--model", "smollm2", "--requests", "48", "--repeats", "2"]),
    "memory": ("memory_plan.py", []),
}
# per bench: a hung bench must not hang the suite (generous: a loaded machine is ~10x slower)
TIMEOUT_S = 1800


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


def _cell(text: str) -> str:
    """One table cell: no pipes, no newlines."""
    return " ".join(text.replace("|", "/").split())


def run(name: str, quick: bool, timeout: float) -> tuple[list[list[str]], str, float, str]:
    """(RATIO rows, the script's output, seconds, status: ok or why it failed)."""
    script, full_args = BENCHES[name]
    cmd = [sys.executable, str(HERE / script), *(["--quick"] if quick else full_args)]
    start = time.perf_counter()
    try:
        # its own process group, so a timeout also ends what the bench started (CLI calls,
        # training workers) instead of leaving them running
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE.parent,
            start_new_session=True,
        )
    except OSError as exc:
        return [[f"{name} FAILED (could not start)", "-", "-", _cell(str(exc))]], "", 0.0, "error"
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        code: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # benches clean their temp dirs on SIGTERM
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        code = f"timeout after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    rows = [
        [cell.strip() for cell in line.removeprefix("RATIO ").split("|")]
        for line in stdout.splitlines()
        if line.startswith("RATIO ")
    ]
    status = "ok"
    if code != 0:
        status = f"exit {code}" if isinstance(code, int) else code
    elif not rows:
        status = "no RATIO line"
    if status != "ok":
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["(no stderr)"]
        rows.append([f"{name} FAILED ({status})", "-", "-", _cell(last[0])[:200]])
    output = stdout + (
        f"\n--- stderr (last 3000 chars) ---\n{stderr[-3000:]}" if status != "ok" else ""
    )
    return rows, output, seconds, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, seconds per bench")
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(BENCHES))
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per bench")
    parser.add_argument(
        "--out", type=Path, help="default bench/results.md (quick: results-quick.md)"
    )
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    out = args.out or HERE / ("results-quick.md" if args.quick else "results.md")
    table = ["| benchmark | ratio | target | compared |", "|---|---:|---|---|"]
    timing = ["| bench | seconds | status |", "|---|---:|---|"]
    details, failed = [], []
    for name in names:
        print(f"== {name} ==", flush=True)
        rows, output, seconds, status = run(name, args.quick, args.timeout)
        print(output, flush=True)
        table += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        timing.append(f"| {name} | {seconds:.0f} | {status} |")
        failed += [name] if status != "ok" else []
        details.append(f"### {name} ({seconds:.0f} s, {status})\n\n```\n{output.strip()}\n```\n")
    mode = "quick mode (tiny model: a smoke run, not figures)" if args.quick else "full run"
    header = (
        f"# Benchmark results\n\n{dt.date.today().isoformat()}, {mode}, on {machine()}\n\n"
        "Every ratio compares ours with a reference measured in the same run on the same data.\n"
    )
    text = (
        header + "\n" + "\n".join(table) + "\n\n" + "\n".join(timing)
        + "\n\n## Details\n\n" + "\n".join(details)
    )  # fmt: skip
    out.write_text(text)
    print("\n" + "\n".join(table) + "\n\n" + "\n".join(timing))
    print(f"\nwrote {out}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
