"""Frozen-prefix activations: compute the layers below the adapter once, not every step.

When an adapter only adapts the upper layers (`lora.layers_to_transform`), the layers below
the lowest adapted one are frozen and see no gradient: their output for an example depends on
its tokens alone. Training recomputes it for every example at every step, and every retrain of
the same data (a new rank, a new seed, the next pull request) recomputes it again. Here it is
computed once per (base weights, lowest adapted layer, examples), kept in memory during the
run and in cache/prefix/<key>.safetensors across runs, and fed to the upper layers as
`inputs_embeds` while the lower layers pass their input through.

Exact by construction: with packing, attention is block-diagonal per example and positions
restart at 0, so an example's hidden state below layer K does not depend on its row
neighbours. The states are always computed the same way (all examples packed in a fixed
order), so a cache hit and a miss give bitwise the same training. A one-batch self-check
against the normal forward guards architectures whose layers do not follow the
`hidden = layer(hidden, ...)` convention: on a mismatch the cache is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from registry.core.fs import atomic_file
from registry.spec.data import TokenizedExample
from registry.train import batching

BUDGET_ENV = "REGISTRY_PREFIX_CACHE_MB"  # the most memory the states may take; 0 turns it off


@dataclass
class FrozenPrefix:
    k: int  # layers 0..k-1 are bypassed; their output comes from `train` / `val`
    layers: torch.nn.ModuleList
    train: list[torch.Tensor]  # per train example, [len, hidden]
    val: list[torch.Tensor]
    cached: bool  # True: read from cache/prefix, nothing was computed


class _Stop(Exception):
    """Raised by the hook on layer K: everything the prefix needs has been computed."""


def lowest_adapted_layer(spec: Any, n_layers: int) -> int:
    """K, the first adapted layer: layers 0..K-1 are a frozen prefix (0 = no prefix)."""
    layers = spec.lora.layers_to_transform
    return min(layers) if layers and min(layers) < n_layers else 0


def decoder_layers(model: Any) -> torch.nn.ModuleList | None:
    layers = getattr(model.get_base_model().get_decoder(), "layers", None)
    return layers if isinstance(layers, torch.nn.ModuleList) else None


def _passthrough(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return hidden_states


@contextlib.contextmanager
def bypass(layers: torch.nn.ModuleList, k: int) -> Iterator[None]:
    """Layers 0..k-1 return their input: `inputs_embeds` reaches layer k unchanged."""
    for layer in layers[:k]:
        layer.forward = _passthrough  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        for layer in layers[:k]:
            del layer.forward


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """No dropout while measuring; the caller's train/eval mode comes back afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def compute_states(
    model: Any,
    examples: list[TokenizedExample],
    k: int,
    device: str,
    batch_args: dict,
    progress: bool = False,
) -> list[torch.Tensor]:
    """The input of layer k for every example, [len(example), hidden] each, in a fixed layout."""
    layers = decoder_layers(model)
    captured: list[torch.Tensor] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        captured.append((args[0] if args else kwargs["hidden_states"]).detach())
        raise _Stop

    states: list[torch.Tensor | None] = [None] * len(examples)
    lengths = {i: len(ex) for i, ex in enumerate(examples)}
    rows = batching.pack(lengths, batch_args["max_seq_len"], batch_args["packing"])
    handle = layers[k].register_forward_pre_hook(hook, with_kwargs=True)
    decoder = model.get_base_model().get_decoder()
    try:
        with torch.no_grad(), _eval_mode(model):
            starts = range(0, len(rows), batch_args["rows_per_batch"])
            for start in tqdm(starts, desc=f"frozen layers 0-{k - 1}", disable=not progress):
                group = rows[start : start + batch_args["rows_per_batch"]]
                b = batching.collate([[examples[i] for i in row] for row in group],
                                     batch_args["pad_id"])  # fmt: skip
                captured.clear()
                with contextlib.suppress(_Stop):
                    decoder(input_ids=b.input_ids.to(device),
                            position_ids=b.position_ids.to(device), use_cache=False)  # fmt: skip
                hidden = captured[0].to("cpu")
                for r, row in enumerate(group):
                    at = 0
                    for i in row:
                        states[i] = hidden[r, at : at + len(examples[i])].clone()
                        at += len(examples[i])
    finally:
        handle.remove()
    return states  # type: ignore[return-value]


def cache_key(base_id: str, k: int, device: str, dtype: torch.dtype, batch_args: dict,
              examples: list[TokenizedExample]) -> str:  # fmt: skip
    layout = {a: batch_args[a] for a in ("max_seq_len", "rows_per_batch", "packing")}
    h = hashlib.sha256(json.dumps([base_id, k, device, str(dtype), layout]).encode())
    for ex in examples:
        h.update(json.dumps(ex.input_ids).encode() + b"\n")
    return h.hexdigest()


def fits_budget(examples: list[TokenizedExample], hidden: int, dtype: torch.dtype) -> bool:
    n_tokens = sum(len(ex) for ex in examples)
    budget_mb = float(os.environ.get(BUDGET_ENV, "2048"))
    return n_tokens * hidden * torch.finfo(dtype).bits / 8 <= budget_mb * 2**20


def load_or_compute(
    root: Path,
    key: str,
    examples: list[TokenizedExample],
    compute: Callable[[], list[torch.Tensor]],
) -> tuple[list[torch.Tensor], bool]:
    """The states from cache/prefix/<key>.safetensors (True), or computed now and stored."""
    from safetensors.torch import load_file, save_file

    path = root / f"{key}.safetensors"
    try:
        tensors = load_file(path)
        states = [tensors[str(i)] for i in range(len(examples))]
        if all(len(s) == len(ex) for s, ex in zip(states, examples, strict=True)):
            return states, True
    except Exception:  # noqa: BLE001 - absent or damaged (any safetensors error): compute again
        pass
    states = compute()
    with atomic_file(path) as tmp:
        save_file({str(i): s.contiguous() for i, s in enumerate(states)}, tmp)
    return states, False


def prepare(
    model: Any,
    spec: Any,
    base_id: str,
    train_ex: list[TokenizedExample],
    val_ex: list[TokenizedExample],
    *,
    device: str,
    dtype: torch.dtype,
    batch_args: dict,
    world_size: int,
    root: Path,
    progress: bool = False,
) -> FrozenPrefix | None:
    """The frozen prefix of this run, or None where the shortcut does not apply."""
    layers = decoder_layers(model)
    if layers is None or world_size > 1:  # data-parallel ranks would each compute it all
        return None
    k = lowest_adapted_layer(spec, len(layers))
    hidden = model.get_base_model().config.hidden_size
    examples = train_ex + val_ex
    if k == 0 or not fits_budget(examples, hidden, dtype):
        return None
    key = cache_key(base_id, k, device, dtype, batch_args, examples)
    states, cached = load_or_compute(
        root,
        key,
        examples,
        lambda: compute_states(model, examples, k, device, batch_args, progress),
    )
    found = FrozenPrefix(k, layers, states[: len(train_ex)], states[len(train_ex) :], cached)
    probe_ids = list(range(min(len(train_ex), batch_args["rows_per_batch"])))
    probe = batching.micro_batches(train_ex, probe_ids, **batch_args, states=found.train)[0]
    return found if agrees(model, layers, k, probe, device) else None


def agrees(model: Any, layers: torch.nn.ModuleList, k: int, batch: Any, device: str) -> bool:
    """One batch through the normal forward and through the prefix path: the same loss?"""
    from registry.train.loss import CausalLMLoss

    head = CausalLMLoss(model)
    with torch.no_grad(), _eval_mode(model):
        full = head(*batch.tensors(device)[:3]).item()
        with bypass(layers, k):
            cached = head(*batch.tensors(device)).item()
    if abs(full - cached) <= 1e-3 * max(1.0, abs(full)):
        return True
    warnings.warn(
        f"frozen-prefix cache disabled: the prefix path gives loss {cached:.6g}, "
        f"the normal forward {full:.6g} (an architecture this shortcut does not fit)",
        stacklevel=2,
    )
    return False
