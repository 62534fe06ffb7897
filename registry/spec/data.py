"""Datasets: check examples and turn them into tokens with answer-only labels.

Training and evaluation share this module, so the prompt an adapter is trained on is exactly the
prompt it is evaluated on. Reading JSONL (the formats, the bounds on untrusted files) lives in
registry.spec.jsonl; its names are re-exported here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.errors import Problem
from registry.spec.jsonl import (
    FORMATS,
    MAX_DATASET_BYTES,
    MAX_LINE_BYTES,
    MAX_PROBLEMS,
    ROLES,
    Example,
    load_examples,
    parse_examples,
)
from registry.spec.paths import open_regular

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "FORMATS",
    "IGNORE_INDEX",
    "MAX_DATASET_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PROBLEMS",
    "ROLES",
    "DatasetStats",
    "Example",
    "TokenizedExample",
    "duplicate_problems",
    "file_sha256",
    "leakage_problems",
    "load_examples",
    "normalise",
    "parse_examples",
    "prompt_ids",
    "render_prompt",
    "show_example",
    "token_stats",
    "tokenize_example",
]

IGNORE_INDEX = -100  # label value PyTorch's cross-entropy skips: no loss on prompt tokens


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class DatasetStats:
    examples: int = 0
    tokens: int = 0
    answer_tokens: int = 0
    min_len: int = 0
    mean_len: float = 0.0
    p95_len: int = 0
    max_len: int = 0
    over_max_len: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)


def file_sha256(path: Path) -> str:
    """sha256 of a dataset, streamed, refusing anything but a regular file (a FIFO never blocks)."""
    with open_regular(path) as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# -- checks ------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Casefold, strip accents and punctuation, collapse spaces: what 'near duplicate' means."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s]", " ", text.casefold())
    return " ".join(text.split())


def duplicate_problems(examples: list[Example], where: str) -> list[Problem]:
    """Exact and near duplicates inside one file: warnings (they waste steps, bias eval)."""
    problems = []
    exact: dict[tuple, int] = {}
    near: dict[str, int] = {}
    for ex in examples:
        key = (ex.prompt_text, ex.answer)
        if key in exact:
            problems.append(
                Problem(where, f"exact duplicate of line {exact[key]}", ex.line, severity="warning")
            )
            continue
        exact[key] = ex.line
        nkey = normalise(ex.prompt_text) + "\x00" + normalise(ex.answer)
        if nkey in near:
            problems.append(
                Problem(
                    where,
                    f"near duplicate of line {near[nkey]} (same text once normalised)",
                    ex.line,
                    severity="warning",
                )
            )
        else:
            near[nkey] = ex.line
    return problems


def leakage_problems(train: list[Example], evals: list[Example], eval_where: str) -> list[Problem]:
    """An eval prompt that also appears in train makes the gate measure memorisation."""
    train_prompts = {normalise(ex.prompt_text): ex.line for ex in train}
    return [
        Problem(
            eval_where,
            f"prompt also in the train set (train line {train_prompts[normalise(ex.prompt_text)]})",
            ex.line,
            hint="remove it from one of the files: the gate would measure memorisation",
        )
        for ex in evals
        if normalise(ex.prompt_text) in train_prompts
    ]


def token_stats(
    tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_seq_len: int
) -> tuple[DatasetStats, list[Example]]:
    """Token statistics and the examples longer than max_seq_len."""
    lengths, answer_tokens, too_long = [], 0, []
    for ex in examples:
        tok = tokenize_example(tokenizer, ex)
        lengths.append(len(tok))
        answer_tokens += sum(1 for label in tok.labels if label != IGNORE_INDEX)
        if len(tok) > max_seq_len:
            too_long.append(ex)
    if not lengths:
        return DatasetStats(), too_long
    ordered = sorted(lengths)
    stats = DatasetStats(
        examples=len(lengths),
        tokens=sum(lengths),
        answer_tokens=answer_tokens,
        min_len=ordered[0],
        mean_len=sum(lengths) / len(lengths),
        p95_len=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        max_len=ordered[-1],
        over_max_len=len(too_long),
        lengths=lengths,
    )
    return stats, too_long


# -- formatting and tokenizing -----------------------------------------------------------------


def render_prompt(tokenizer: PreTrainedTokenizerBase, example: Example) -> str:
    """The exact text the model sees before its answer (chat template + generation prompt)."""
    if example.prompt is not None:
        return example.prompt
    return tokenizer.apply_chat_template(
        list(example.messages), tokenize=False, add_generation_prompt=True
    )


def prompt_ids(tokenizer: PreTrainedTokenizerBase, example: Example) -> list[int]:
    return tokenizer(render_prompt(tokenizer, example), add_special_tokens=False)["input_ids"]


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_seq_len: int | None = None
) -> TokenizedExample:
    """Prompt and answer tokenized separately and concatenated, answer + EOS trained on.

    Separate tokenization matters: at inference the model continues exactly these prompt
    tokens, so a merge across the prompt/answer boundary would train on a sequence it never
    sees. The EOS label teaches the adapter to stop.
    """
    p_ids = prompt_ids(tokenizer, example)
    a_ids = tokenizer(example.answer, add_special_tokens=False)["input_ids"]
    a_ids = [*a_ids, tokenizer.eos_token_id]
    input_ids = p_ids + a_ids
    labels = [IGNORE_INDEX] * len(p_ids) + a_ids
    if max_seq_len is not None:
        input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    return TokenizedExample(input_ids, labels)


def show_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_seq_len: int, color: bool = False
) -> str:
    """Render one example with the trained tokens marked, to catch silent masking bugs.

    Trained spans are wrapped in ⟦ ⟧ (or green when `color`); everything else is context.
    """
    tok = tokenize_example(tokenizer, example, max_seq_len)
    pieces, current, trained = [], [], None
    for tid, label in zip(tok.input_ids, tok.labels, strict=True):
        is_trained = label != IGNORE_INDEX
        if trained is not None and is_trained != trained:
            pieces.append((trained, current))
            current = []
        current.append(tid)
        trained = is_trained
    if current:
        pieces.append((trained, current))
    out = []
    for is_trained, ids in pieces:
        text = tokenizer.decode(ids, skip_special_tokens=False)
        if is_trained:
            out.append(f"\x1b[1;32m{text}\x1b[0m" if color else f"⟦{text}⟧")
        else:
            out.append(f"\x1b[2m{text}\x1b[0m" if color else text)
    n_trained = sum(1 for label in tok.labels if label != IGNORE_INDEX)
    header = (
        f"example {example.id} (line {example.line}): {len(tok)} tokens, "
        f"{n_trained} trained (marked {'green' if color else '⟦…⟧'}), "
        f"{len(tok) - n_trained} context"
    )
    return header + "\n" + "".join(out)
