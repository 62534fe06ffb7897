"""The model a training updates: the base model (4-bit for QLoRA) wrapped in a PEFT adapter.

LoRA's random initialisation is seeded by the spec's seed, so the same spec starts from the same
adapter; QLoRA's base is prepared by peft for stable 4-bit training, and its 4-bit linears keep
their differentiable kernel on every CPU (see build_model). Under FSDP the base may be loaded
on the CPU and moved to the GPU as it is sharded (registry/train/fsdp.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from registry.errors import InvalidInput
from registry.spec.base_model import ResolvedModel, load_base_model
from registry.spec.schema import Spec


def build_model(
    spec: Spec,
    base: ResolvedModel,
    device: str,
    dtype: torch.dtype,
    *,
    load_on: str | None = None,
    shards: int = 1,
) -> Any:
    """The PEFT model of `spec` on `base`: only the adapter's parameters require grad.

    `device` is where it will train; `load_on` where its weights are loaded (the CPU when FSDP
    moves them to `device` as it shards them over `shards` ranks)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    attn = spec.training.attn_implementation
    # flash-attention loads only onto a GPU: staged on the CPU, the model switches to it after
    staged_fa2 = attn == "flash_attention_2" and (load_on or device) != device
    model = load_base_model(
        base,
        quantization=spec.quantization,
        device=load_on or device,
        dtype=dtype,
        attn_implementation="sdpa" if staged_fa2 else attn,
    )
    if staged_fa2:
        if not device.startswith("cuda") or importlib.util.find_spec("flash_attn") is None:
            message = "training.attn_implementation: flash_attention_2 needs a CUDA GPU and the "
            raise InvalidInput(message + "flash-attn package; use sdpa", file="base_model")
        model.set_attn_implementation(attn)
    for module in model.modules():
        # bitsandbytes repacks 4-bit weights for CPUs with AVX512-BF16 on the first forward in
        # eval mode (the base validation pass) and from then on multiplies through a kernel
        # with no autograd: gradients stop flowing through the frozen linears. Training keeps
        # the differentiable path.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    checkpointing = use_checkpointing(spec, model.config, device, shards)
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


def use_checkpointing(spec: Spec, config: Any, device: str, shards: int = 1) -> bool:
    """training.gradient_checkpointing, with `auto` resolved: on for QLoRA on GPU (its memory
    recipe) and for GPU runs whose memory plan says activations outweigh the weights (each
    rank's share of them with FSDP over `shards` > 1 ranks); off on CPU, where memory is rarely
    the limit and recomputation costs ~30% more compute."""
    chosen = spec.training.gradient_checkpointing
    if chosen != "auto":
        return bool(chosen)
    if not device.startswith("cuda"):
        return False
    if spec.method == "qlora":
        return True
    from registry.train.memory import estimate

    plan = estimate(spec, config, device=device, world_size=shards, sharded=shards > 1)
    return plan.gradient_checkpointing


class Trainable:
    """The adapter's parameters by name: what the optimizer updates and checkpoints hold.

    Under FSDP the parameters are shards (registry/train/fsdp.py): a snapshot is still the
    whole tensors (gathered: every rank must take it, together) and a restore takes whole
    tensors, each rank keeping its shard."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named]

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.named]

    def snapshot(self) -> dict[str, torch.Tensor]:
        from registry.train.fsdp import full

        return {n: full(p.detach()).clone() for n, p in self.named}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        from registry.train.fsdp import scatter_into

        for n, p in self.named:
            scatter_into(p, tensors[n])


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
