"""Frozen-prefix activations (registry/train/prefix.py) vs the full forward, on the same data.

An adapter of the upper layers only (`lora.layers_to_transform`) trains three ways on the
same examples, each from an empty artifact cache: with the shortcut off (every step runs all
layers: the reference), with it on and nothing cached (the states of the frozen layers are
computed first, once per example), and on again with the states cached by the previous run,
as a retrain of the same data (another seed here, a new rank or the next pull request in
practice) finds them. Checked, not only timed: the cached run reports that it read the states,
and the first run with the shortcut ends at the reference's validation loss (same seed).

    python bench/prefix_cache.py [--model tiny|smollm2] [--steps N] [--examples N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from benchkit import BASE_MODELS, isolated_cache, parse_args, ratio

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
name: bench
version: 1.0.0
base_model: {base}
lora: {{r: 16, alpha: 32, dropout: 0.0, target_modules: {targets}, layers_to_transform: {layers}}}
data: {{format: chat, train: datasets/bench/train.jsonl, eval: datasets/bench/eval.jsonl,
        system_prompt: Extract the support ticket as one JSON object.}}
training: {{max_steps: {steps}, learning_rate: 1.0e-3, batch_size: 8, max_seq_len: 256,
           eval_every: {steps}, val_examples: 32, seed: {seed}}}
"""


def write_repo(root: Path, base: str, n_layers: int, steps: int, examples: int, seed: int) -> Path:
    upper = list(range(n_layers * 2 // 3, n_layers))  # the upper third, as ticket-json does
    targets = "[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]"
    spec = root / "adapters" / "bench" / "adapter.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(SPEC.format(base=base, targets=targets, layers=upper, steps=steps, seed=seed))
    data = root / "datasets" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    source = REPO / "datasets" / "ticket-json"
    if not (source / "train.jsonl").exists():
        raise SystemExit(f"{source} is missing: run `make data` first")
    lines = (source / "train.jsonl").read_text().splitlines(keepends=True)
    (data / "train.jsonl").write_text("".join(lines[:examples]))
    shutil.copy(source / "eval.jsonl", data / "eval.jsonl")
    return spec


def run(spec_path: Path, cache: Path, enabled: bool) -> dict:
    from registry.spec.schema import load_spec
    from registry.train import train

    os.environ["REGISTRY_CACHE"] = str(cache)
    os.environ["REGISTRY_PREFIX_CACHE_MB"] = "2048" if enabled else "0"
    return train(load_spec(spec_path), progress=False).metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(BASE_MODELS), default="smollm2")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--examples", type=int, default=200, help="train examples used")
    args = parse_args(parser, {"model": "tiny", "steps": 6, "examples": 64})
    base = BASE_MODELS[args.model]
    from registry.spec.base_model import load_base_model, resolve_base_model

    n_layers = load_base_model(resolve_base_model(base)).config.num_hidden_layers

    with tempfile.TemporaryDirectory(prefix="bench-prefix-") as name:
        tmp = Path(name)
        rows = {}
        # a discarded 1-step run first: one-off start-up costs must not land on the reference
        spec = write_repo(tmp / "warmup" / "repo", base, n_layers, 1, 16, 0)
        run(spec, isolated_cache(tmp / "warmup"), enabled=False)
        for label, enabled, seed in (("full", False, 0), ("cold", True, 0), ("cached", True, 1)):
            cache = isolated_cache(tmp / label)
            if label == "cached":  # the states the cold run computed, nothing else
                shutil.copytree(tmp / "cold" / "registry-cache" / "prefix", cache / "prefix")
            spec = write_repo(tmp / label / "repo", base, n_layers, args.steps, args.examples, seed)
            rows[label] = m = run(spec, cache, enabled)
            print(f"{label:7s} prefix layers {m['frozen_prefix_layers']:2d} "
                  f"cached {m['frozen_prefix_cached']!s:5s} wall {m['wall_s']:6.1f} s  "
                  f"{m['train_tokens_per_s']:6.1f} tok/s  val {m['final_val_loss']:.4f}", flush=True)  # fmt: skip
        full, cold, cached = rows["full"], rows["cold"], rows["cached"]
        assert cached["frozen_prefix_cached"] and cold["frozen_prefix_layers"] > 0
        assert full["frozen_prefix_layers"] == 0
        # same seed, same data: the shortcut changes float rounding, not what is learned
        assert (
            abs(cold["final_val_loss"] - full["final_val_loss"])
            <= 1e-3 * full["final_val_loss"] + 1e-4
        )
        what = (f"{base.split(':')[-1]}, LoRA on layers {n_layers * 2 // 3}-{n_layers - 1} of "
                f"{n_layers}, {args.steps} steps of 8, {args.examples} examples")  # fmt: skip
        speed = cached["train_tokens_per_s"] / full["train_tokens_per_s"]
        ratio("train tok/s, frozen prefix cached vs full forward", f"{speed:.2f}x", "> 1x", what)
        ratio("retrain wall, full forward / prefix cached", f"{full['wall_s'] / cached['wall_s']:.2f}x",
              "> 1x", what + "; wall includes loading and validation")  # fmt: skip
        ratio("first train wall, full forward / prefix computed", f"{full['wall_s'] / cold['wall_s']:.2f}x",
              "-", what + "; the states of every example are computed first")  # fmt: skip
        print(
            json.dumps(
                {k: {"wall_s": v["wall_s"], "val": v["final_val_loss"]} for k, v in rows.items()}
            )
        )


if __name__ == "__main__":
    main()
