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

    model = load_base_model(base, quantization=spec.quantization, device=device, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecations inside peft
        if spec.method == "qlora":
            # Casts norms/embeddings to fp32 for stable 4-bit training. Activation checkpointing
            # is the QLoRA memory recipe on GPUs; on CPUs memory is rarely the limit and it
            # costs ~30% more compute.
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=device.startswith("cuda"),
                gradient_checkpointing_kwargs={"use_reentrant": False},
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
