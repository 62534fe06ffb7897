"""The model a training updates: the base model (4-bit for QLoRA) wrapped in a PEFT adapter.

LoRA's random initialisation is seeded by the spec's seed, so the same spec starts from the same
adapter; QLoRA's base is prepared by peft for stable 4-bit training.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from registry.errors import InvalidInput
from registry.spec.base_model import ResolvedModel, load_base_model
from registry.spec.schema import Spec


def build_model(spec: Spec, base: ResolvedModel, device: str, dtype: torch.dtype) -> Any:
    """The PEFT model of `spec` on `base`: only the adapter's parameters require grad."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = load_base_model(
        base,
        quantization=spec.quantization,
        device=device,
        dtype=dtype,
        attn_implementation=spec.training.attn_implementation,
    )
    checkpointing = use_checkpointing(spec, model.config, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecations inside peft
        if spec.method == "qlora":
            # Casts norms/embeddings to fp32 for stable 4-bit training.
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        elif checkpointing:
            # Non-reentrant: the frozen embeddings need no requires_grad hook, and dropout's RNG
            # state is replayed, so the loss is the same as without.
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        lora = spec.lora
        n_layers = model.config.num_hidden_layers
        if lora.layers_to_transform and max(lora.layers_to_transform) >= n_layers:
            message = (
                f"{base.ref} has layers 0..{n_layers - 1}, not {max(lora.layers_to_transform)}"
            )
            raise InvalidInput([spec.problem("lora.layers_to_transform", message)])
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            bias=lora.bias,
            use_rslora=lora.use_rslora,
            layers_to_transform=lora.layers_to_transform,
            use_dora=spec.method == "dora",
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(spec.training.seed)  # LoRA's random init: same seed, same start
        return get_peft_model(model, config)


def use_checkpointing(spec: Spec, config: Any, device: str) -> bool:
    """training.gradient_checkpointing, with `auto` resolved: on for QLoRA on GPU (its memory
    recipe) and for GPU runs whose memory plan says activations outweigh the weights; off on
    CPU, where memory is rarely the limit and recomputation costs ~30% more compute."""
    chosen = spec.training.gradient_checkpointing
    if chosen != "auto":
        return bool(chosen)
    if not device.startswith("cuda"):
        return False
    if spec.method == "qlora":
        return True
    from registry.train.memory import estimate

    return estimate(spec, config, device=device).gradient_checkpointing


class Trainable:
    """The adapter's parameters by name: what the optimizer updates and checkpoints hold."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named]

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.named}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.named:
                p.copy_(tensors[n])


@contextlib.contextmanager
def quiet_transformers(quiet: bool) -> Iterator[None]:
    """Hide transformers' weight-loading bars when the caller asked for silence."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was:
            hf_logging.enable_progress_bar()
