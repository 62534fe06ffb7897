"""Validation during training: the adapter's loss on held-out rows, and the base model's.

The base model's validation loss (what an adapter must beat) is the same for every adapter
trained on the same base, data and batching, so it is remembered in the cache (folder
"val-loss", keyed by weights, numerics and the exact rows): a retrain of a spec whose
weights-relevant keys changed (a new rank, a new seed) skips one full pass over the validation
set. Every rank joins every pass (the losses are summed across ranks), so rank 0 decides for
all whether the remembered value is used. Under FSDP (`lockstep`) every rank also runs the same
number of forward passes, each gathering the sharded layers: a rank with a smaller share of
the batches runs extra passes whose losses are dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch

from registry.core.cache import cache_dir
from registry.core.fs import atomic_file
from registry.train import distributed
from registry.train.distributed import Dist


class Validation:
    def __init__(
        self,
        head: torch.nn.Module,
        model: Any,
        batches: Sequence[Any],
        d: Dist,
        device: str,
        dtype: torch.dtype,
        base_id: str,
        lockstep: bool = False,
    ) -> None:
        self.head, self.model, self.batches, self.d = head, model, batches, d
        self.device, self.dtype, self.base_id = device, dtype, base_id
        self.mine = list(batches)[d.rank :: d.world_size]  # this rank's share
        most = -(-len(batches) // d.world_size)
        self.padding = list(batches[:1]) * (most - len(self.mine)) if lockstep else []

    def loss(self, adapter: bool = True) -> float | None:
        """Mean loss per trained token over every rank's rows (None: no validation set)."""
        if not self.batches:
            return None
        self.head.eval()
        off = contextlib.nullcontext() if adapter else self.model.disable_adapter()
        with torch.no_grad(), off:
            loss = sum(self.head(*b.tensors(self.device)).item() for b in self.mine)
            for b in self.padding:  # lockstep with the ranks that have one batch more
                self.head(*b.tensors(self.device))
        self.head.train()
        total = [loss, sum(b.n_targets for b in self.mine)]
        loss, count = distributed.sum_all(self.d, total)
        return loss / max(count, 1)

    def base_loss(self) -> float | None:
        """What the adapter must beat; the same for every adapter on this base and data."""
        if not self.batches:
            return None
        key = base_val_key(self.base_id, self.device, self.dtype, self.batches)
        # rank 0 decides for all: every rank must join the validation pass, or none
        value = distributed.broadcast(self.d, recall_val_loss(key))
        if value is None:
            value = self.loss(adapter=False)
            if self.d.is_main:
                remember_val_loss(key, value)
        return value


def base_val_key(base_id: str, device: str, dtype: torch.dtype, batches: Sequence[Any]) -> str:
    """Content key of a base-model validation pass: weights, numerics and the exact rows."""
    h = hashlib.sha256(json.dumps([base_id, device, str(dtype)]).encode())
    for b in batches:
        for tensor in b.tensors("cpu")[:3]:  # tokens, positions, targets
            h.update(tensor.numpy().tobytes())
            h.update(str(tuple(tensor.shape)).encode())
    return h.hexdigest()


def recall_val_loss(key: str) -> float | None:
    """The base validation loss stored under `key`, or None (absent or damaged: compute it)."""
    try:
        with open(cache_dir("val-loss", f"{key}.json"), encoding="utf-8") as f:
            return float(json.load(f)["value"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_val_loss(key: str, value: float) -> None:
    with atomic_file(cache_dir("val-loss", f"{key}.json")) as tmp:
        tmp.write_text(json.dumps({"value": value}), encoding="utf-8")
