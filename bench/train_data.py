"""Synthetic training data for train_throughput.py, with exactly controlled token lengths.

A copy task (the answer is the prompt's words reversed) built from words that are one token
each, so an example's length in tokens is known in advance: `equal` gives every example the
same length (nobody pads; pure loop overhead), `variable` spreads lengths over
[seq_len/8, seq_len] (where padding wastes compute and packing does not).
"""

from __future__ import annotations

import json
import random
from pathlib import Path


def one_token_words(tokenizer, n: int = 400) -> list[str]:
    """Words that are exactly one token with a leading space: k words == k tokens."""
    candidates = [
        "".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 + i % 4))
        for i in range(20000)
    ] + "the a of to and in is it you that he was for on are as with his they at be".split()
    words = [
        w
        for w in dict.fromkeys(candidates)
        if len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1
    ]
    if len(words) < 20:  # a byte-level tokenizer: use fixed-width words instead (3 tokens each)
        words = [w for w in dict.fromkeys(candidates) if len(w) == 2]
    return words[:n]


def make_data(tokenizer, folder: Path, n: int, seq_len: int) -> dict[str, Path]:
    """Copy tasks (answer = the prompt's words reversed), equal and variable token lengths."""
    from registry.spec.data import Example, tokenize_example

    words = one_token_words(tokenizer)
    rng = random.Random(0)

    def record(k: int) -> dict:
        picked = [rng.choice(words) for _ in range(k)]
        return {"messages": [
            {"role": "user", "content": "Reverse:" + "".join(" " + w for w in picked)},
            {"role": "assistant", "content": "Reversed:" + "".join(" " + w for w in reversed(picked))},
        ]}  # fmt: skip

    def length(rec: dict) -> int:
        m = rec["messages"]
        return len(tokenize_example(tokenizer, Example("x", 1, m[1]["content"], messages=(m[0],))))

    # words per example such that the whole example is ~seq_len tokens
    per_word = max(1, (length(record(40)) - length(record(0))) // 40)
    fixed = length(record(0))
    max_words = (seq_len - fixed) // (2 * per_word)
    equal = [record(max_words) for _ in range(n)]
    variable = [record(rng.randint(max(1, max_words // 8), max_words)) for _ in range(n)]
    assert len({length(r) for r in equal}) == 1, "equal-length data is not equal"
    paths = {}
    for name, records in (("equal", equal), ("variable", variable)):
        paths[name] = folder / "datasets" / "bench" / f"{name}.jsonl"
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths
