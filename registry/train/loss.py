"""What training minimises: the loss head over trained positions, and the learning-rate shape.

(Validation, and the remembered base-model validation loss, are registry/train/validation.py.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from registry.spec.data import IGNORE_INDEX


class CausalLMLoss(torch.nn.Module):
    """Summed next-token loss over the trained positions only (targets come pre-shifted).

    The vocabulary projection runs only where a target exists, not over every prompt and pad
    position: with answer-only loss that is most of the logits' compute and memory. Models that
    post-process logits (soft-capping, scaling) take the plain path.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = model.get_base_model().config
        post = ("final_logit_softcapping", "logit_scale", "logits_scaling")
        self.head_only = all(getattr(cfg, attr, None) is None for attr in post)

    def forward(self, input_ids, position_ids, targets, prefix=None) -> torch.Tensor:
        base = self.model.get_base_model()
        keep = targets != IGNORE_INDEX
        # use_cache=False matters: transformers detects packed rows only when there is no cache
        kwargs = {"input_ids": input_ids, "position_ids": position_ids, "use_cache": False}
        if prefix is not None:  # frozen-prefix states (registry/train/prefix.py) replace the tokens
            kwargs = {**kwargs, "input_ids": None, "inputs_embeds": prefix}
        if self.head_only:
            hidden = base.get_decoder()(**kwargs).last_hidden_state
            logits = base.get_output_embeddings()(hidden[keep])
        else:
            logits = base(**kwargs).logits[keep]
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the peak LR at `step` (the usual HF shapes: linear warmup, then decay)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return 1.0
