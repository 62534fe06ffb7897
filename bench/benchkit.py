"""What every bench script shares: the RATIO line, the --quick switch, an isolated cache.

Kept tiny on purpose: each bench stays readable on its own; this only removes the copies that
must agree (run_all.py parses the RATIO format, and every script needs the same --quick rule).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

# git without the user's config or identity: benches build throwaway repositories
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def ratio(name: str, value: str, target: str, what: str) -> None:
    """The machine-readable line run_all.py collects: `RATIO name | value | target | what`."""
    cells = [c.replace("|", "/").replace("\n", " ") for c in (name, value, target, what)]
    print("RATIO " + " | ".join(cells), flush=True)


def parse_args(parser: argparse.ArgumentParser, quick: dict[str, object]) -> argparse.Namespace:
    """Parse with a `--quick` switch that swaps in small defaults (the tiny model, a few
    repeats) so the whole suite smoke-tests in minutes; flags given explicitly still win."""
    parser.add_argument(
        "--quick", action="store_true", help="tiny model and few repeats: a smoke run, seconds"
    )
    # SIGTERM (run_all's timeout) becomes SystemExit, so `with TemporaryDirectory()` blocks
    # still remove what the bench wrote
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    known, _ = parser.parse_known_args()
    if known.quick:
        parser.set_defaults(**quick)
    return parser.parse_args()


def isolated_cache(folder: Path) -> Path:
    """A fresh REGISTRY_CACHE under `folder` that shares only the converted base models of the
    current cache: nothing trained or pulled before this run can be reused by accident, and the
    one-off model conversion (tens of seconds for SmolLM2) is not paid again."""
    from registry.core.cache import cache_dir

    models = cache_dir("models")
    models.mkdir(parents=True, exist_ok=True)
    cache = folder / "registry-cache"
    cache.mkdir(parents=True)
    (cache / "models").symlink_to(models.resolve())
    return cache


# -- a toy adapter (rollback_vs_retrain.py, pull_cache.py) --------------------------------------

BASE_MODELS = {"tiny": "builtin:tiny-llama", "smollm2": "builtin:smollm2-135m-instruct"}
SOUNDS = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack"}
TOY_SPEC = """\
name: toy
version: {version}
description: Animal sounds; any base model lowers its loss on them in a few steps
base_model: {base}
method: lora
lora: {{r: {r}, alpha: {alpha}, dropout: 0.0, target_modules: [q_proj, k_proj, v_proj, o_proj]}}
data:
  format: chat
  train: datasets/toy/train.jsonl
  eval: datasets/toy/eval.jsonl
  system_prompt: Answer with the sound the animal makes.
training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 8, max_seq_len: 128, seed: 0,
           warmup_ratio: 0.0}}
eval:
  metrics: [exact_match, loss]
  max_new_tokens: 8
  few_shot: 0
  gate:
    - {{metric: loss, min_delta_vs_base: 0.1}}
"""


def toy_spec(base: str, steps: int, version: str = "1.0.0", r: int = 8) -> str:
    return TOY_SPEC.format(version=version, base=base, steps=steps, r=r, alpha=2 * r)


def write_toy_data(root: Path) -> None:
    """datasets/toy/{train,eval}.jsonl: distinct prompts whose answer depends on the animal only,
    so even a randomly initialised model learns it (the gate on loss passes) in a few steps."""
    import json
    import random

    rng = random.Random(0)
    adjectives = ["big", "small", "old", "young", "happy", "sleepy", "brown", "white"]
    for split, n, offset in (("train", 64, 0), ("eval", 16, 1000)):
        lines = []
        for i in range(n):
            animal = rng.choice(sorted(SOUNDS))
            messages = [
                {"role": "user", "content": f"{rng.choice(adjectives)} {animal} #{offset + i}"},
                {"role": "assistant", "content": SOUNDS[animal]},
            ]
            lines.append(json.dumps({"id": f"toy-{offset + i}", "messages": messages}) + "\n")
        path = root / "datasets" / "toy" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))
