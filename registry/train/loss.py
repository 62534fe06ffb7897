"""What training minimises and how it is measured: the loss head, the LR shape, validation.

The base model's validation loss (what an adapter must beat) is the same for every adapter
trained on the same base, data and batching, so it is remembered in
cache/val-loss/<key>.json: a retrain of a spec whose weights-relevant keys changed (a new rank,
a new seed) skips one full pass over the validation set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def base_val_key(base_id: str, device: str, dtype: torch.dtype, batches: Sequence[Any]) -> str:
    """Content key of a base-model validation pass: weights, numerics and the exact rows."""
    h = hashlib.sha256(json.dumps([base_id, device, str(dtype)]).encode())
    for b in batches:
        for tensor in b.tensors("cpu")[:3]:  # tokens, positions, targets
            h.update(tensor.numpy().tobytes())
            h.update(str(tuple(tensor.shape)).encode())
    return h.hexdigest()


def recall(root: os.PathLike, key: str) -> float | None:
    """The value stored under `key`, or None (absent or damaged: compute it again)."""
    try:
        with open(os.path.join(root, f"{key}.json"), encoding="utf-8") as f:
            return float(json.load(f)["value"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(root: os.PathLike, key: str, value: float) -> None:
    from registry.train.checkpoint import atomic_file

    with atomic_file(Path(root) / f"{key}.json") as tmp:
        tmp.write_text(json.dumps({"value": value}), encoding="utf-8")
