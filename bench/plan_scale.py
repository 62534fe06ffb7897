"""How `registry plan` scales with the size of the registry: it should grow with the change.

Builds temporary git repos holding 10, 100 and 1,000 adapter specs (datasets tracked through a
root datasets.dvc with its .dir listing in the DVC cache) and a history of --commits commits,
then on a branch changes one adapter and times `plan("main")` (median of --repeat runs) for:

    spec      one spec changed (lora.r + version bump)          -> retrain
    data      one adapter's data file changed (+ version bump)  -> retrain, via the .dir diff
    nolisting the same data change with the .dir objects gone    -> fallback: every adapter
              whose data lies under datasets/ is checked (this one grows with the repo)

`git s` is the time spent inside git subprocesses; `cli s` runs `python -m registry plan` when
the CLI has the command (interpreter start and imports included).

    .venv/bin/python bench/plan_scale.py [--sizes 10 100 1000] [--commits 200] [--repeat 5]
    .venv/bin/python bench/plan_scale.py --quick     # 10 and 1,000 specs, spec + data, short

RATIO lines: seconds of `registry plan` (in-process and CLI) on the largest registry with one
spec changed (target < 2 s), and how much each scenario's plan time grows from the smallest to
the largest registry (target <= 2x for spec and data changes: plan must grow with the change,
not with the registry; the nolisting fallback grows by design and has no target).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import GIT_ENV, parse_args, ratio  # noqa: E402

from registry.core.git import GitReader  # noqa: E402
from registry.gitops import plan as plan_module  # noqa: E402

ENV = {**os.environ, **GIT_ENV}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env=ENV, check=True, capture_output=True)


def spec(name: str, version: str, r: int = 8) -> str:
    return (
        f"name: {name}\nversion: {version}\ndescription: bench adapter {name}\n"
        "base_model: builtin:tiny-llama\n"
        f"lora: {{r: {r}, alpha: 16, target_modules: [q_proj, v_proj]}}\n"
        f"data: {{format: chat, train: datasets/{name}/train.jsonl, "
        f"eval: datasets/{name}/eval.jsonl}}\n"
        "training: {max_steps: 10}\neval: {metrics: [exact_match]}\n"
    )


def track_datasets(root: Path) -> None:
    """What `dvc add datasets` writes: datasets.dvc and the .dir listing in the cache."""
    base = root / "datasets"
    entries = [
        {"md5": hashlib.md5(p.read_bytes()).hexdigest(), "relpath": p.relative_to(base).as_posix()}
        for p in sorted(base.rglob("*.jsonl"))
    ]
    listing = json.dumps(entries).encode()
    md5 = hashlib.md5(listing).hexdigest()
    obj = root / ".dvc/cache/files/md5" / md5[:2] / f"{md5[2:]}.dir"
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(listing)
    (root / "datasets.dvc").write_text(f"outs:\n- md5: {md5}.dir\n  hash: md5\n  path: datasets\n")


def build(root: Path, n: int, commits: int) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("/datasets/\n")
    for i in range(n):
        name = f"adapter-{i:04d}"
        (root / "adapters" / name).mkdir(parents=True)
        (root / "adapters" / name / "adapter.yaml").write_text(spec(name, "1.0.0"))
        for split in ("train", "eval"):
            data = root / "datasets" / name / f"{split}.jsonl"
            data.parent.mkdir(parents=True, exist_ok=True)
            data.write_text(json.dumps({"prompt": f"{name} {split}", "completion": "x"}) + "\n")
    track_datasets(root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    # History: each commit bumps one adapter's version (round robin).
    for c in range(1, commits):
        name = f"adapter-{c % n:04d}"
        (root / "adapters" / name / "adapter.yaml").write_text(spec(name, f"1.0.{c}"))
        git(root, "commit", "-q", "-am", f"bump {name}")
    git(root, "checkout", "-q", "-b", "pr")


def current_version(root: Path, name: str) -> str:
    text = (root / "adapters" / name / "adapter.yaml").read_text()
    return next(ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("version:"))


def change(root: Path, scenario: str) -> None:
    name = "adapter-0001"
    major = int(current_version(root, name).split(".")[0]) + 1
    if scenario == "spec":
        (root / "adapters" / name / "adapter.yaml").write_text(spec(name, f"{major}.0.0", r=16))
    else:
        (root / "datasets" / name / "train.jsonl").write_text(
            '{"prompt": "new", "completion": "y"}\n'
        )
        track_datasets(root)
        (root / "adapters" / name / "adapter.yaml").write_text(spec(name, f"{major}.0.0"))
        if scenario == "nolisting":
            shutil.rmtree(root / ".dvc/cache")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"change {name} ({scenario})")


def time_plan(root: Path, repeat: int) -> tuple[float, float, int]:
    """(median seconds of plan, median seconds inside git, entries)."""
    real_run = GitReader.run
    spent = [0.0]

    def timed_run(self, *args, **kw):
        t = time.perf_counter()
        try:
            return real_run(self, *args, **kw)
        finally:
            spent[0] += time.perf_counter() - t

    plan_module.plan("main", repo=root, published={})  # warm-up: imports, OS file cache
    totals, gits = [], []
    GitReader.run = timed_run
    try:
        for _ in range(repeat):
            spent[0] = 0.0
            t = time.perf_counter()
            result = plan_module.plan("main", repo=root, published={})
            totals.append(time.perf_counter() - t)
            gits.append(spent[0])
    finally:
        GitReader.run = real_run
    return statistics.median(totals), statistics.median(gits), len(result.entries)


def time_cli(root: Path) -> float | None:
    cmd = [sys.executable, "-m", "registry", "plan", "--base", "main", "--json"]
    env = {**ENV, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True)
    return time.perf_counter() - t if proc.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scenarios", nargs="+", default=["spec", "data", "nolisting"])
    args = parse_args(
        parser, {"sizes": [10, 1000], "commits": 10, "repeat": 1, "scenarios": ["spec", "data"]}
    )

    rows = []
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        for n in args.sizes:
            template = Path(tmp) / f"template-{n}"
            t = time.perf_counter()
            build(template, n, args.commits)
            print(f"built {n} specs x {args.commits} commits in {time.perf_counter() - t:.1f}s")
            for scenario in args.scenarios:
                root = Path(tmp) / f"{scenario}-{n}"
                shutil.copytree(template, root, symlinks=True)
                change(root, scenario)
                seconds, git_seconds, entries = time_plan(root, args.repeat)
                cli = time_cli(root)
                rows.append((scenario, n, entries, seconds, git_seconds, cli))
                shutil.rmtree(root)
            shutil.rmtree(template)

    print(
        f"\n{'scenario':<10} {'specs':>6} {'entries':>7} {'plan s':>8} {'git s':>7} "
        f"{'cli s':>7} {'x vs smallest':>14}"
    )
    smallest = {}
    for scenario, n, entries, seconds, git_seconds, cli in rows:
        smallest.setdefault(scenario, seconds)
        cli_text = f"{cli:7.3f}" if cli is not None else "    n/a"
        print(
            f"{scenario:<10} {n:>6} {entries:>7} {seconds:8.3f} {git_seconds:7.3f} {cli_text} "
            f"{seconds / smallest[scenario]:13.1f}x"
        )
    print_ratios(rows)


def print_ratios(rows: list[tuple]) -> None:
    largest, smallest = max(r[1] for r in rows), min(r[1] for r in rows)
    by = {(scenario, n): (seconds, cli) for scenario, n, _, seconds, _, cli in rows}
    if ("spec", largest) in by:
        seconds, cli = by[("spec", largest)]
        what = f"{largest:,} specs, one spec changed, median"
        ratio(f"plan {largest:,} specs one changed, in-process", f"{seconds:.3f} s", "< 2 s", what)
        if cli is not None:
            ratio(f"plan {largest:,} specs one changed, CLI", f"{cli:.2f} s", "< 2 s",
                  "`python -m registry plan --base main --json`, interpreter start included")  # fmt: skip
    if largest == smallest:
        return
    for scenario in ("spec", "data", "nolisting"):
        if (scenario, largest) in by and (scenario, smallest) in by:
            grow = by[(scenario, largest)][0] / by[(scenario, smallest)][0]
            target = "-" if scenario == "nolisting" else "<= 2x"
            ratio(f"plan growth {largest:,} vs {smallest:,} specs, {scenario}", f"{grow:.1f}x",
                  target, f"in-process plan seconds, {scenario} change")  # fmt: skip


if __name__ == "__main__":
    main()
