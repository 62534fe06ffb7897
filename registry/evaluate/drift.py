"""general_drift: how much an adapter changes the model on prompts unrelated to its task.

A LoRA adapter trained hard on a narrow task can "forget" general behaviour. We measure it as

    drift = mean over general prompts of
              mean over answer positions t of KL( p_base(. | x, y<t) || p_adapter(. | x, y<t) )

where y is the BASE model's own greedy answer to the prompt x, teacher-forced through both
models. In nats per token; 0 means the adapter leaves general behaviour untouched.

Why this definition:
- KL(base || adapter) weighs each token by how likely the *base* finds it, so it measures how
  much of the base's behaviour the adapter takes away where the base is confident, and ignores
  changes in the far tail of the vocabulary nobody samples.
- Scoring the base's own continuation keeps the text in-distribution for the reference model;
  teacher forcing makes the number deterministic (no sampling noise) and costs one forward pass
  per model, cheap enough to run on every evaluation.
- Averaging per prompt first keeps long answers from dominating short ones.
- It is exact: an adapter whose LoRA B matrices are zero (a fresh one) adds exact zeros to every
  layer, so its drift is exactly 0.

The prompts ship with the package (resources/general_prompts.jsonl) and are rendered with the
chat template but no system prompt: drift is about behaviour outside the adapter's task setup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from registry.evaluate.generate import BASE, forward_logits, generate, padded_batches, use_contender

DRIFT_MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class DriftResult:
    value: float  # nats/token, mean over prompts
    per_prompt: dict[str, float] = field(default_factory=dict)  # prompt id -> drift

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.per_prompt.items(), key=lambda kv: kv[1], reverse=True)[:k]


def load_general_prompts() -> list[dict[str, str]]:
    text = resources.files("registry").joinpath("resources/general_prompts.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _kl_per_row(base_logits: Any, adapted_logits: Any) -> Any:
    """KL(base || adapted) at every position: sum_v p_b (log p_b - log p_a)."""
    import torch

    log_b = torch.log_softmax(base_logits, dim=-1)
    log_a = torch.log_softmax(adapted_logits, dim=-1)
    return (log_b.exp() * (log_b - log_a)).sum(dim=-1).clamp(min=0.0)


def general_drift(
    model: Any,
    tokenizer: Any,
    *,
    adapter: str = "adapter",
    prompts: list[dict[str, str]] | None = None,
    max_new_tokens: int = DRIFT_MAX_NEW_TOKENS,
    batch_size: int = 16,
    base_id: str | None = None,
    progress: bool = False,
) -> DriftResult:
    """Drift of `adapter` (a loaded adapter name of the PeftModel `model`) from the base.
    `base_id` (the base weights' identity) lets the base's answers be remembered across runs."""
    prompts = prompts if prompts is not None else load_general_prompts()
    if not prompts:
        raise ValueError("general_drift needs at least one prompt")
    prompt_ids = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    prompt_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompt_ids]
    with use_contender(model, BASE):
        answers = generate(
            model,
            tokenizer,
            prompt_ids,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            desc="drift: base answers",
            weights_id=base_id,
        )
    rows = [p + a.token_ids for p, a in zip(prompt_ids, answers, strict=True)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vocab = model.get_output_embeddings().weight.shape[0]
    per_prompt: dict[str, float] = {}
    for batch in padded_batches(rows, vocab, batch_size):
        batch_rows = [rows[i] for i in batch]
        with use_contender(model, BASE):
            base_logits, _ = forward_logits(model, batch_rows, pad)
        with use_contender(model, adapter):
            adapted_logits, _ = forward_logits(model, batch_rows, pad)
        kl = _kl_per_row(base_logits, adapted_logits)
        for j, i in enumerate(batch):
            # Positions len(prompt)-1 .. len(row)-1 predict each answer token and what follows
            # the answer (EOS, or the next token when the answer was cut off).
            start, stop = len(prompt_ids[i]) - 1, len(rows[i])
            per_prompt[prompts[i].get("id", str(i))] = float(kl[j, start:stop].mean())
    value = sum(per_prompt.values()) / len(per_prompt)
    return DriftResult(value, per_prompt)
