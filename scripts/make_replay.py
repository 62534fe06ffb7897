#!/usr/bin/env python3
"""Replay data for the example adapters: general prompts answered by the base model itself.

An adapter trained only on ticket -> JSON pairs learns to answer *everything* with ticket JSON
(docs/calibration.md, run I: 123 of the 169 general-suite items the base got right were broken).
Mixing in a little replay (the base model's own greedy answers to general prompts, under a few
generic system prompts) teaches it that the JSON belongs to its task prompt only: the classic
rehearsal remedy for forgetting. None of these prompts is an item of the shipped regression
suite (checked below), so the gate still measures on unseen items.

Run once (it needs the base model); the output is committed, so the dataset recipe
(scripts/make_datasets.py) stays stdlib-only and byte-identical on every machine:

    .venv/bin/python scripts/make_replay.py   # -> scripts/data/general_replay.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "scripts" / "data" / "general_replay.jsonl"
SYSTEMS = [
    None,
    "You are a helpful assistant.",
    "Answer briefly.",
    "You are a concise assistant. Reply with the answer only, in as few words as possible.",
]
WORDS = ["happy", "cold", "fast", "bright", "quiet", "strong", "early", "empty", "soft", "tall"]
THINGS = [
    "a bicycle",
    "a volcano",
    "a library",
    "the moon",
    "a violin",
    "rain",
    "a bridge",
    "a honeybee",
    "a glacier",
    "a lighthouse",
    "bread",
    "a compass",
]
KINDS = ["fruit", "mammal", "color", "vegetable", "planet", "musical instrument", "bird", "tree"]


def prompts() -> list[str]:
    rng = Random(7)
    out = [
        f"What is {a} plus {b}?"
        for a, b in ((rng.randint(31, 99), rng.randint(31, 99)) for _ in range(16))
    ]
    out += [
        f"What is {a} times {b}?"
        for a, b in ((rng.randint(11, 19), rng.randint(6, 9)) for _ in range(12))
    ]
    out += [f"What is the opposite of '{w}'?" for w in WORDS]
    out += [f"Describe {t} in one sentence." for t in THINGS]
    out += [f"Name a {k}." for k in KINDS]
    out += [f"Give me one word that rhymes with '{w}'." for w in WORDS[:6]]
    out += [
        "How many wheels does a tricycle have?",
        "What do cows drink?",
        "What gas do plants take in?",
        "Write a short greeting for a birthday card.",
        "What is a synonym for 'big'?",
        "Suggest a name for a small sailing boat.",
        "What is the boiling point of water in Celsius?",
        "How many hours are in two days?",
        "What language is spoken in Brazil?",
        "Tell me a fun fact about penguins.",
        "What is the freezing point of water in Fahrenheit?",
        "Spell the word 'necessary'.",
        "What comes after Tuesday?",
        "What is a haiku?",
        "List two primary colors.",
        "What is H2O?",
        "Translate 'good night' into Spanish.",
        "How do you say 'cat' in German?",
        "Write one sentence about the ocean.",
        "What is the tallest animal on land?",
    ]
    return out


def main() -> int:
    from registry.evaluate.generate import generate
    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model
    from registry.spec.suite import load_suite, suite_path

    suite_prompts = {
        it.prompt.strip().lower() for it in load_suite(suite_path("general", None)).items
    }
    items = prompts()
    overlap = [p for p in items if p.strip().lower() in suite_prompts]
    assert not overlap, f"replay prompts must not be suite items: {overlap}"
    resolved = resolve_base_model("builtin:smollm2-135m-instruct")
    tokenizer, model = load_tokenizer(resolved), load_base_model(resolved).eval()
    rows, ids = [], []
    for i, prompt in enumerate(items):
        system = SYSTEMS[i % len(SYSTEMS)]
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        rows.append(messages)
    gens = generate(model, tokenizer, ids, max_new_tokens=48, batch_size=16, progress=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    kept, seen = 0, set()
    with OUT.open("w", encoding="utf-8", newline="\n") as fh:
        for i, (messages, gen) in enumerate(zip(rows, gens, strict=True)):
            if not gen.stopped or not gen.text.strip() or str(messages) in seen:
                continue  # cut-off answers would teach the adapter not to stop; no duplicates
            seen.add(str(messages))
            record = {
                "id": f"replay-{i:03d}",
                "messages": [*messages, {"role": "assistant", "content": gen.text.strip()}],
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            kept += 1
    print(f"{kept} of {len(items)} replay examples -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
