#!/usr/bin/env python3
"""Measure a base model on a regression suite: accuracy per category, wall time, tokens.

A development tool, not a test: it shows whether a suite suits a base model (the gate only
counts items the base gets right, so a suite the base mostly fails has little power). Greedy,
batched decoding through the project's own loader and generator, exactly as `registry eval`
answers suite items; nothing is memoised, so the time is real. Name the machine with any figure.

    python scripts/measure_suite.py [--suite FILE] [--base-model REF] [--batch-size N]
                                    [--json OUT] [--show-wrong CATEGORY ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

from registry.spec.checks import check
from registry.spec.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
GENERAL = ROOT / "registry" / "resources" / "regression" / "general.jsonl"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=GENERAL)
    parser.add_argument("--base-model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write every answer and verdict here")
    parser.add_argument("--show-wrong", nargs="*", default=[], metavar="CATEGORY")
    args = parser.parse_args()

    import torch

    from registry.evaluate.generate import generate
    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model
    from registry.spec.data import Example, prompt_ids

    suite = load_suite(args.suite)
    started = time.perf_counter()
    resolved = resolve_base_model(args.base_model)
    tokenizer = load_tokenizer(resolved)
    model = load_base_model(resolved)
    device = str(next(model.parameters()).device)
    load_s = time.perf_counter() - started

    items = list(suite.items)
    prompts = [
        prompt_ids(tokenizer, Example(it.id, 0, "", messages=tuple(it.messages()))) for it in items
    ]
    budgets = [suite.tokens_for(it) for it in items]
    gens: list = [None] * len(items)
    started, cpu_started = time.perf_counter(), time.process_time()
    for budget in sorted(set(budgets)):  # one generate call per budget, as eval does
        idx = [i for i, b in enumerate(budgets) if b == budget]
        out = generate(
            model,
            tokenizer,
            [prompts[i] for i in idx],
            max_new_tokens=budget,
            batch_size=args.batch_size,
        )
        for i, gen in zip(idx, out, strict=True):
            gens[i] = gen
    gen_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started  # all threads: shows contention on a shared box

    per = defaultdict(lambda: {"n": 0, "right": 0, "tokens": 0, "cut": 0})
    records = []
    for it, gen in zip(items, gens, strict=True):
        ok = check(it, gen.text)
        for key in (it.tags[0] if it.tags else "untagged", "ALL"):
            row = per[key]
            row["n"] += 1
            row["right"] += ok
            row["tokens"] += len(gen.token_ids)
            row["cut"] += not gen.stopped
        records.append({"id": it.id, "answer": gen.text, "right": ok, "tokens": len(gen.token_ids)})
        if not ok and it.tags and it.tags[0] in args.show_wrong:
            print(f"WRONG {it.id}: {it.prompt!r} -> {gen.text!r}")

    print(f"suite {suite.name}: {len(items)} items; base {args.base_model}")
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, device {device}")
    print(f"batch size {args.batch_size}")
    print(f"model load {load_s:.1f} s; generation {gen_s:.1f} s wall, {cpu_s:.1f} s CPU")
    print(f"{'category':14s} {'n':>4s} {'right':>5s} {'acc':>6s} {'tokens':>7s} {'cut':>4s}")
    for key in sorted(per, key=lambda k: (k == "ALL", k)):
        row = per[key]
        print(
            f"{key:14s} {row['n']:4d} {row['right']:5d} {row['right'] / row['n']:6.1%} "
            f"{row['tokens'] / row['n']:7.1f} {row['cut']:4d}"
        )
    if args.json:
        summary = {
            "suite": suite.name,
            "base_model": args.base_model,
            "load_s": load_s,
            "generation_s": gen_s,
            "generation_cpu_s": cpu_s,
            "per_category": per,
            "items": records,
        }
        args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
