"""Batches without waste: the splits, which examples each step sees, how they are packed.

The optimisation semantics never depend on packing: an optimizer step always consumes exactly
`batch_size * grad_accum` examples (the global batch), drawn from a seeded stream of epoch
permutations, and the loss is the mean over every trained token of the global batch. Packing
only decides how those examples are laid out in rows, so it changes speed, not the maths:

- packing on: first-fit-decreasing into rows of at most `max_seq_len` tokens; each example keeps
  its own `position_ids` (0, 1, ...). transformers (>= 4.56, sdpa/eager/flex/flash) detects the
  position resets and builds a block-diagonal causal mask, so an example never attends to
  another one (tests/train/test_batching.py checks logits packed == alone).
- packing off: one example per row; rows are still grouped by length within the step.

Targets are shifted here, per example (target[t] = label[t + 1]; the last token of every example
has none), so a loss computed over a packed row never asks one example to predict the next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from registry.errors import InvalidInput
from registry.spec.data import (
    IGNORE_INDEX,
    Example,
    TokenizedExample,
    load_examples,
    tokenize_example,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from registry.spec.schema import Spec


def load_splits(spec: Spec) -> tuple[list[Example], list[Example]]:
    """Train and validation examples. By default validation is a fixed held-out fraction of
    train, never the eval file: early stopping must not pick a checkpoint on the very items the
    gate then scores. `data.validation: eval` opts into the eval file; `none` validates nothing."""
    fmt, system = spec.data.format, spec.data.system_prompt
    train = load_examples(spec.train_path, fmt, system)
    if spec.data.validation == "none":
        return train, []
    if spec.data.validation == "eval":
        if spec.eval_path is None:
            raise InvalidInput(
                [spec.problem("data.validation", "validation: eval needs data.eval")]
            )
        return train, load_examples(spec.eval_path, fmt, system)
    # A fixed (not seed-dependent) split: runs with different seeds validate on the same data.
    order = list(range(len(train)))
    random.Random("validation").shuffle(order)
    held = set(order[: max(1, round(spec.data.validation_fraction * len(train)))])
    if len(held) >= len(train):
        raise InvalidInput(f"{spec.data.train}: too few examples to hold out a validation split")
    return (
        [ex for i, ex in enumerate(train) if i not in held],
        [ex for i, ex in enumerate(train) if i in held],
    )


def tokenize_splits(
    spec: Spec, tokenizer: PreTrainedTokenizerBase
) -> tuple[list[TokenizedExample], list[TokenizedExample], int]:
    """Tokenized (and truncated to max_seq_len) splits, and how many train examples were cut."""
    train, val = load_splits(spec)
    n = spec.training.max_seq_len
    train_tok = [tokenize_example(tokenizer, ex) for ex in train]
    truncated = sum(len(tok) > n for tok in train_tok)
    train_tok = [TokenizedExample(t.input_ids[:n], t.labels[:n]) for t in train_tok]
    val_tok = [tokenize_example(tokenizer, ex, n) for ex in val[: spec.training.val_examples]]
    return train_tok, val_tok, truncated


@lru_cache(maxsize=8)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)  # str seeds hash stably across runs
    return tuple(order)


def step_examples(n: int, global_batch: int, step: int, seed: int) -> list[int]:
    """Example indices of optimizer step `step` (0-based): a pure function of its arguments.

    The stream is epoch permutation 0, then 1, ...; a step may straddle two epochs. Being a
    pure function of the step is what makes resume exact: the data position is the step.
    """
    start = step * global_batch
    return [_epoch_order(n, seed, pos // n)[pos % n] for pos in range(start, start + global_batch)]


def shard(indices: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's share of a global batch (strided, so shards differ by at most one)."""
    return indices[rank::world_size]


def pack(lengths: dict[int, int], capacity: int, packing: bool = True) -> list[list[int]]:
    """Lay examples (id -> length) out in rows of at most `capacity` tokens.

    First-fit decreasing finds how many rows are needed; the examples are then re-dealt over
    that many rows, longest first into the currently shortest row, so the rows come out of
    nearly equal length (a micro-batch is padded to its longest row: equal rows, no padding).
    Deterministic (ties broken by id). Rows come back longest first.
    """
    ordered = sorted(lengths, key=lambda i: (-lengths[i], i))
    if not packing:
        return [[i] for i in ordered]
    rows: list[list[int]] = []
    room: list[int] = []
    for i in ordered:
        size = min(lengths[i], capacity)
        for r, free in enumerate(room):
            if size <= free:
                rows[r].append(i)
                room[r] -= size
                break
        else:
            rows.append([i])
            room.append(capacity - size)
    balanced: list[list[int]] = [[] for _ in rows]
    load = [0] * len(rows)
    for i in ordered:
        r = min(range(len(rows)), key=lambda r: (load[r], r))
        balanced[r].append(i)
        load[r] += lengths[i]
    if max(load, default=0) <= capacity:  # balancing can overshoot where first-fit fitted
        rows = balanced
    return sorted(rows, key=lambda row: (-sum(lengths[i] for i in row), row[0]))


@dataclass
class Batch:
    input_ids: torch.Tensor  # [rows, T]
    position_ids: torch.Tensor  # [rows, T], restarting at 0 for every example
    targets: torch.Tensor  # [rows, T], next-token targets, IGNORE_INDEX where nothing is trained
    tokens: int  # real (non-pad) tokens
    pad_tokens: int
    n_targets: int  # trained tokens: what the loss is averaged over
    prefix: torch.Tensor | None = None  # [rows, T, hidden]: frozen-prefix states (prefix.py)

    def tensors(self, device: str) -> tuple[torch.Tensor, ...]:
        out = (self.input_ids.to(device), self.position_ids.to(device), self.targets.to(device))
        return out if self.prefix is None else (*out, self.prefix.to(device))


def collate(
    rows: list[list[TokenizedExample]],
    pad_id: int,
    states: list[list[torch.Tensor]] | None = None,
) -> Batch:
    """Concatenate each row's examples, right-pad rows to the longest one.

    Pad tokens continue the last example's positions: they sit after every real token, so the
    causal mask already hides them, and a row holding a single example then needs no mask at all
    (sdpa keeps its fast is_causal path). `states` (per example, as rows) fill `prefix`; pads
    get zeros there, which no real token ever attends to.
    """
    width = max(sum(len(ex) for ex in row) for row in rows)
    prefix = None
    if states is not None:
        hidden = states[0][0]
        prefix = torch.zeros((len(rows), width, hidden.shape[-1]), dtype=hidden.dtype)
        for r, row_states in enumerate(states):
            if row_states:
                joined = torch.cat(row_states)
                prefix[r, : len(joined)] = joined
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    tokens = 0
    for r, row in enumerate(rows):
        at = 0
        for ex in row:
            n = len(ex)
            input_ids[r, at : at + n] = torch.tensor(ex.input_ids)
            position_ids[r, at : at + n] = torch.arange(n)
            # shift inside the example: the last token has no target
            targets[r, at : at + n - 1] = torch.tensor(ex.labels[1:])
            at += n
        if at < width:
            last = int(position_ids[r, at - 1]) if at else -1
            position_ids[r, at:] = torch.arange(last + 1, last + 1 + width - at)
        tokens += at
    n_targets = int((targets != IGNORE_INDEX).sum())
    pads = len(rows) * width - tokens
    return Batch(input_ids, position_ids, targets, tokens, pads, n_targets, prefix)


def micro_batches(
    examples: list[TokenizedExample],
    ids: list[int],
    *,
    max_seq_len: int,
    rows_per_batch: int,
    pad_id: int,
    packing: bool = True,
    states: list[torch.Tensor] | None = None,
) -> list[Batch]:
    """Pack `ids` (indices into `examples`) into rows, then group rows into micro-batches.

    A micro-batch holds at most `rows_per_batch` rows of at most `max_seq_len` tokens: the same
    memory bound as an unpacked batch of `batch_size` examples, usually with far fewer rows.
    """
    # The same example may appear twice in a global batch (a step straddling epochs of a tiny
    # dataset): key rows by position in `ids`, not by example index.
    lengths = {pos: len(examples[i]) for pos, i in enumerate(ids)}
    rows = pack(lengths, max_seq_len, packing)
    batches = []
    for k in range(0, len(rows), rows_per_batch):
        group = rows[k : k + rows_per_batch]
        row_states = None if states is None else [[states[ids[p]] for p in row] for row in group]
        batches.append(
            collate([[examples[ids[p]] for p in row] for row in group], pad_id, row_states)
        )
    return batches
