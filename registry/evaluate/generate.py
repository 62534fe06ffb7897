"""Batched greedy generation and reference-answer loss, for every contender on one base model.

The base model is loaded once and wrapped in a PeftModel holding the adapter (and the previous
version, when compared). Base passes run under `disable_adapter()`, so all contenders share the
same weights in memory and differ only by the LoRA deltas being switched on or off.

Generation pads on the LEFT: every prompt's last token sits at the end of the row, so the next
token is read from the same column for the whole batch and the KV cache grows in lockstep.
`model.generate` derives position ids from the attention mask (cumsum - 1), so a padded prompt
sees exactly the positions it would see alone; tests check that batched == one-by-one.
Prompts are sorted by length before batching, which keeps padding (wasted compute) small.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.cache import cache_dir
from registry.core.fs import atomic_file
from registry.spec.data import IGNORE_INDEX, TokenizedExample

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BASE = "base"
PROMPT_BASELINE = "prompt_baseline"
_LOGIT_BUDGET = 64_000_000  # floats of logits per forward pass in loss/drift (~256 MB fp32)


@dataclass(frozen=True)
class Generation:
    text: str  # decoded, special tokens and the EOS removed
    token_ids: list[int]  # generated tokens, EOS excluded
    stopped: bool  # ended with EOS before max_new_tokens (False = cut off)


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS ids from the tokenizer and the model's generation config (chat models have several)."""
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(int(i) for i in source)
    if not ids:
        raise ValueError("the tokenizer has no EOS token: generation could never stop")
    return sorted(ids)


@contextlib.contextmanager
def use_contender(model: Any, name: str) -> Iterator[None]:
    """Base-model contenders run with every adapter disabled; others activate their adapter."""
    if name in (BASE, PROMPT_BASELINE):
        if hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield
        else:
            yield
        return
    model.set_adapter(name)
    yield


def _progress(iterable: Sequence, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="batch", leave=False)


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "generate",
    weights_id: str | None = None,
) -> list[Generation]:
    """Greedy-decode every prompt (token ids); results come back in the prompts' order.

    `weights_id` names the exact weights generating (the base model's sha256, an adapter's
    fingerprint). With it, each result is remembered on disk, and a later call with the same
    weights, prompt and settings reads it instead of generating: greedy decoding is
    deterministic, and every pull request evaluates the same base model on the same items.
    """
    stops = stop_token_ids(model, tokenizer)
    memo = _Memo(weights_id, model, max_new_tokens, stops) if weights_id else None
    results: list[Generation | None] = [memo.get(p) if memo else None for p in prompts]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        fresh = _generate(
            model,
            tokenizer,
            [prompts[i] for i in todo],
            stops,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            desc=desc,
        )
        for i, gen in zip(todo, fresh, strict=True):
            results[i] = gen
            if memo:
                memo.put(prompts[i], gen)
    return [r for r in results if r is not None]


class _Memo:
    """Remembered generations: cache/generations/<weights + settings>/<prompt sha256>.json."""

    def __init__(self, weights_id: str, model: Any, max_new_tokens: int, stops: list[int]):
        param = next(model.parameters())
        settings = json.dumps(
            [weights_id, str(param.device), str(param.dtype), max_new_tokens, stops]
        )
        self.root = cache_dir("generations", hashlib.sha256(settings.encode()).hexdigest())

    def _path(self, prompt: Sequence[int]) -> Path:
        return self.root / (hashlib.sha256(json.dumps(list(prompt)).encode()).hexdigest() + ".json")

    def get(self, prompt: Sequence[int]) -> Generation | None:
        try:
            data = json.loads(self._path(prompt).read_text(encoding="utf-8"))
            return Generation(
                str(data["text"]), [int(t) for t in data["token_ids"]], bool(data["stopped"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: generate again

    def put(self, prompt: Sequence[int], gen: Generation) -> None:
        with atomic_file(self._path(prompt)) as tmp:
            tmp.write_text(json.dumps(gen.__dict__), encoding="utf-8")


def _generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    stops: list[int],
    *,
    max_new_tokens: int,
    batch_size: int,
    progress: bool,
    desc: str,
) -> list[Generation]:
    import torch
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        eos_token_id=stops,
        pad_token_id=pad,
    )
    device = next(model.parameters()).device
    # Longest first: an out-of-memory batch shows up at the start, not after minutes of work.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    results: list[Generation | None] = [None] * len(prompts)
    model.eval()
    for batch in _progress(_batches(order, batch_size), desc, progress):
        width = max(len(prompts[i]) for i in batch)
        ids = [[pad] * (width - len(prompts[i])) + list(prompts[i]) for i in batch]
        mask = [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch]
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=torch.tensor(mask, device=device),
                generation_config=config,
            )
        for row, i in zip(out[:, width:].tolist(), batch, strict=True):
            cut = next((k for k, t in enumerate(row) if t in stops), None)
            tokens = row if cut is None else row[:cut]
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            results[i] = Generation(text, tokens, cut is not None)
    return [r for r in results if r is not None]


def padded_batches(
    sequences: Sequence[Sequence[int]], vocab_size: int, batch_size: int
) -> list[list[int]]:
    """Index batches, sorted by length, capped so a batch's logits stay within a memory budget."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = len(sequences[current[0]]) if current else len(sequences[i])
        if current and (
            len(current) >= batch_size or (len(current) + 1) * width * vocab_size > _LOGIT_BUDGET
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def forward_logits(
    model: Any, rows: list[list[int]], pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, mask) for right-padded rows: positions of real tokens are the usual 0..len-1."""
    import torch

    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits.float(), mask


def reference_losses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TokenizedExample],
    *,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "loss",
) -> list[float]:
    """Mean token negative log-likelihood (nats) of each reference answer (+ EOS) given its prompt.

    Per item, not per batch: the paired statistics need one number per eval item. exp(loss) is
    the answer's perplexity.
    """
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vocab = model.get_output_embeddings().weight.shape[0]
    seqs = [ex.input_ids for ex in examples]
    losses: list[float] = [0.0] * len(examples)
    model.eval()
    for batch in _progress(padded_batches(seqs, vocab, batch_size), desc, progress):
        logits, _ = forward_logits(model, [list(seqs[i]) for i in batch], pad)
        width = logits.shape[1]
        labels = torch.tensor(
            [list(examples[i].labels) + [IGNORE_INDEX] * (width - len(examples[i])) for i in batch],
            device=logits.device,
        )
        # Token t is predicted from position t-1.
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2),
            labels[:, 1:],
            ignore_index=IGNORE_INDEX,
            reduction="none",
        )
        counts = (labels[:, 1:] != IGNORE_INDEX).sum(dim=1).clamp(min=1)
        for i, value in zip(batch, (nll.sum(dim=1) / counts).tolist(), strict=True):
            losses[i] = float(value)
    return losses
