"""A memory plan before loading: the estimated peak memory of one training rank, from the config.

Nothing here allocates weights: the estimate is arithmetic over the model's config (layer count,
widths, vocabulary) and the spec (method, LoRA targets and rank, batch, sequence length). It is
what `registry train NAME --dry-run [--gpu-memory GB]` prints, and a spec that does not fit the
device fails fast (exit 2) with a hint, before minutes of loading.

Invariants:
- Every term is an upper-bound-leaning estimate of live tensor bytes at the peak (the backward
  pass of the first step): weights at their precision, the adapter's parameters with their
  gradients and AdamW state (fp32), the activations saved for backward (all layers, or one
  layer's input per layer plus one recomputed layer with gradient checkpointing), and the
  logits over every position (the loss head projects only trained positions; all of them is the
  worst case, with packing and full-sequence loss).
- Data parallel: with DDP every rank holds the whole base (the plan of one process); with FSDP
  (`training.distributed: fsdp`, registry/train/fsdp.py) the base and the adapter's state are
  sharded over the ranks, and a rank also holds the units gathered for compute (one unit and
  the next, prefetched: layers, an untied embedding or head; a tied embedding stays gathered
  through the step). 4-bit
  linears are never sharded (FSDP2 cannot shard bitsandbytes' Params4bit): they stay replicated.
  `choose_strategy` is what `training.distributed: auto` picks: ddp unless the replicated
  plan exceeds the device, then fsdp.
- The random builtins (`builtin:random-llama-1b`, `builtin:random-llama-8b`) are defined here by
  their config only (the public Llama 3.2 1B / 3.1 8B shapes), so a plan for them needs no
  download and no weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from registry.errors import InvalidInput, Problem

GIB = 1024**3
# Public Llama shapes (meta-llama/Llama-3.2-1B and Llama-3.1-8B config.json), weights random.
RANDOM_LLAMA_SHAPES: dict[str, dict[str, Any]] = {
    "builtin:random-llama-1b": {
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": True,
        "rope_theta": 500000.0,
    },
    "builtin:random-llama-8b": {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
        "rope_theta": 500000.0,
    },
}
# Saved-for-backward elements per token per decoder layer, in units of the widths (hidden h,
# MLP i, key/value kv). Counted from a Llama layer's autograd graph: the two RMSNorms keep their
# input and an fp32 copy (≈ 2h each), attention keeps q/k/v, the rotated q/k, its output and the
# o_proj input (≈ 4h + 4kv), the MLP keeps gate, up, act(gate) and their product (4i), plus the
# residual stream; LoRA dropout keeps a masked copy of each targeted input.
_PER_LAYER_H = 10
_PER_LAYER_I = 4
_PER_LAYER_KV = 4
_NF4_BYTES = 0.5 + 4 / 64  # 4-bit weights + one fp32 absmax per 64-weight block (upper bound)


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak bytes of one rank, by term."""

    weights: float
    adapter: float  # LoRA parameters + gradients + AdamW moments (fp32)
    activations: float  # with the plan's checkpointing choice
    activations_without_checkpointing: float
    activations_with_checkpointing: float
    logits: float
    overhead: float  # CUDA context and allocator slack on GPU; 0 on CPU
    gradient_checkpointing: bool
    trainable_params: int
    base_params: int
    world_size: int = 1  # ranks the plan is for
    sharded: bool = False  # FSDP: weights and adapter state divided over world_size

    @property
    def total(self) -> float:
        return self.weights + self.adapter + self.activations + self.logits + self.overhead

    def lines(self, device_bytes: float | None) -> list[str]:
        def g(x: float) -> str:
            return f"{x / GIB:8.2f} GiB"

        ckpt = "on" if self.gradient_checkpointing else "off"
        share = f", fsdp-sharded over {self.world_size}" if self.sharded else ""
        out = [
            f"  weights             {g(self.weights)}  ({self.base_params / 1e9:.2f}B params{share})",
            f"  adapter + AdamW     {g(self.adapter)}  ({self.trainable_params / 1e6:.2f}M trainable)",
            f"  activations         {g(self.activations)}  (checkpointing {ckpt}; "
            f"off {self.activations_without_checkpointing / GIB:.2f}, "
            f"on {self.activations_with_checkpointing / GIB:.2f})",
            f"  logits              {g(self.logits)}",
            f"  overhead            {g(self.overhead)}",
            f"  estimated peak      {g(self.total)}",
        ]
        if device_bytes is not None:
            out.append(f"  device memory       {g(device_bytes)}")
        return out


def random_llama_config(ref: str) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(**RANDOM_LLAMA_SHAPES[ref])


def _targets(wanted: list[str] | str, config: Any) -> dict[str, tuple[int, int]]:
    """(in, out) features of each targeted linear in one decoder layer."""
    h, i = config.hidden_size, config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = config.num_key_value_heads * head_dim
    q = heads * head_dim
    shapes = {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }
    if wanted == "all-linear":
        return shapes
    return {name: shape for name, shape in shapes.items() if name in wanted}


def estimate(
    spec: Any,
    config: Any,
    *,
    device: str,
    gradient_checkpointing: bool | None = None,
    world_size: int = 1,
    sharded: bool = False,
) -> MemoryPlan:
    """The plan for one rank of `spec` on a model of `config`, on `device` ("cpu" or "cuda...");
    `sharded`: FSDP over `world_size` ranks (otherwise every rank holds everything, as DDP)."""
    cuda = device.startswith("cuda")
    wbytes = 2 if cuda else 4  # bf16/fp16 on CUDA, fp32 on CPU (registry.spec.base_model)
    h, i, n_layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = config.num_key_value_heads * head_dim
    vocab = config.vocab_size
    tied = bool(getattr(config, "tie_word_embeddings", False))

    layer_linear = sum(a * b for a, b in _targets("all-linear", config).values())
    embed = vocab * h
    norms = (2 * n_layers + 1) * h
    base_params = n_layers * layer_linear + embed * (1 if tied else 2) + norms

    if spec.method == "qlora":
        # Linear layers in NF4; prepare_model_for_kbit_training upcasts the rest to fp32.
        linear_bytes, rest_bytes = n_layers * layer_linear * _NF4_BYTES, 4
        layer_bytes = 2 * h * 4  # what FSDP shards of a layer: its norms (the NF4 linears stay)
    else:
        linear_bytes, rest_bytes = 0.0, wbytes
        layer_bytes = (layer_linear + 2 * h) * wbytes
    shardable = (base_params - (n_layers * layer_linear if linear_bytes else 0)) * rest_bytes
    sharded = sharded and world_size > 1
    if sharded:
        # Shards, plus the units gathered for compute: the current one and the prefetched
        # next (two layers, or the untied embedding or head next to a layer); a tied
        # embedding sits in the root unit, which stays gathered through forward and backward.
        embed_bytes = embed * rest_bytes
        pair = max(2 * layer_bytes, layer_bytes + (0 if tied else embed_bytes))
        gathered = pair + (embed_bytes if tied else 0)
        weights = linear_bytes + shardable / world_size + gathered
    else:
        weights = linear_bytes + shardable

    targets = _targets(spec.lora.target_modules, config)
    layers = len(spec.lora.layers_to_transform) if spec.lora.layers_to_transform else n_layers
    r = spec.lora.r
    per_layer_lora = sum(r * (a + b) for a, b in targets.values())
    if spec.method == "dora":
        per_layer_lora += sum(b for _, b in targets.values())
    trainable = layers * per_layer_lora
    adapter = trainable * (4 + 4 + 8)  # fp32 weights, grads, AdamW exp_avg + exp_avg_sq
    if sharded:  # sharded weights, grads and moments; the unsharded grads while accumulating
        adapter = trainable * (4 + 16 / world_size)

    t = spec.training
    tokens = t.batch_size * t.max_seq_len
    abytes = wbytes if spec.method != "qlora" else 2 if cuda else 4
    per_token = _PER_LAYER_H * h + _PER_LAYER_I * i + _PER_LAYER_KV * kv
    if spec.lora.dropout > 0:
        per_token += sum(a for a, _ in targets.values())  # dropout's masked input copy
    per_token += sum(r for _ in targets)  # LoRA A outputs
    layer_act = tokens * per_token * abytes
    if spec.training.attn_implementation == "eager":
        layer_act += 2 * t.batch_size * heads * t.max_seq_len**2 * abytes
    without = n_layers * layer_act
    with_ckpt = n_layers * tokens * h * abytes + layer_act
    if gradient_checkpointing is None and spec.training.gradient_checkpointing != "auto":
        gradient_checkpointing = bool(spec.training.gradient_checkpointing)
    if gradient_checkpointing is None:  # auto: on GPU, where activations dominate
        gradient_checkpointing = cuda and (spec.method == "qlora" or without > weights)
    activations = with_ckpt if gradient_checkpointing else without
    # At the loss's backward: log-softmax's fp32 output and its gradient, plus the logits in
    # the model dtype where that is not fp32 (their fp32 copy is then a separate tensor).
    logits = tokens * vocab * (8 + (wbytes if wbytes < 4 else 0))
    overhead = 0.75 * GIB if cuda else 0.0
    return MemoryPlan(
        weights=float(weights),
        adapter=float(adapter),
        activations=float(activations),
        activations_without_checkpointing=float(without),
        activations_with_checkpointing=float(with_ckpt),
        logits=float(logits),
        overhead=overhead,
        gradient_checkpointing=bool(gradient_checkpointing),
        trainable_params=int(trainable),
        base_params=int(base_params),
        world_size=world_size,
        sharded=sharded,
    )


def choose_strategy(spec: Any, replicated: MemoryPlan, capacity: float | None) -> tuple[str, str]:
    """("ddp" | "fsdp", why): what `training.distributed` means for a multi-process run, given
    the plan of one replicated rank and one device's bytes (None: unknown, so ddp)."""
    chosen = spec.training.distributed
    if chosen != "auto":
        return chosen, "training.distributed"
    if capacity is None or replicated.total <= capacity:
        return "ddp", "auto: the replicated model fits one device"
    return "fsdp", (
        f"auto: the replicated model needs {replicated.total / GIB:.2f} GiB > "
        f"{capacity / GIB:.2f} GiB per device"
    )


def fsdp_hint(spec: Any, config: Any, device: str, capacity: float) -> str:
    """The FSDP suggestion for a replicated plan that does not fit: the fewest processes
    (2, 4 or 8) whose sharded plan fits, or the 8-process figure."""
    for n in (2, 4, 8):
        plan = estimate(spec, config, device=device, world_size=n, sharded=True)
        if plan.total <= capacity or n == 8:
            verdict = "fits" if plan.total <= capacity else "still too big"
            return (
                f"training.distributed: fsdp with --nproc {n} "
                f"({plan.total / GIB:.2f} GiB per device, {verdict})"
            )
    raise AssertionError("unreachable")


def check_fits(
    spec: Any, plan: MemoryPlan, device_bytes: float, where: str, fsdp: str | None = None
) -> None:
    """Raise InvalidInput (exit 2) with a hint when the plan exceeds `device_bytes` (`fsdp`:
    the sharding suggestion, for a replicated plan)."""
    if plan.total <= device_bytes:
        return
    hints = []
    if spec.method != "qlora":
        hints.append("method: qlora (4-bit base weights)")
    if fsdp is not None and not plan.sharded:
        hints.append(fsdp)
    if not plan.gradient_checkpointing:
        hints.append("training.gradient_checkpointing: true")
    hints.append("a smaller training.batch_size (with grad_accum) or training.max_seq_len")
    problem = spec.problem(
        "training",
        f"estimated peak memory {plan.total / GIB:.2f} GiB exceeds {where} "
        f"{device_bytes / GIB:.2f} GiB",
    )
    raise InvalidInput([replace(problem, hint="try " + "; or ".join(hints))])


def model_config(ref: str) -> Any:
    """The config of base `ref` without loading weights (random builtins: no files at all)."""
    if ref in RANDOM_LLAMA_SHAPES:
        return random_llama_config(ref)
    from transformers import AutoConfig

    from registry.spec.base_model import resolve_base_model

    return AutoConfig.from_pretrained(resolve_base_model(ref).path, trust_remote_code=False)


def device_memory(gpu_memory_gb: float | None) -> tuple[str, float | None, str]:
    """(device, its bytes or None when unknown, how to name it): --gpu-memory plans for CUDA."""
    if gpu_memory_gb is not None:
        return "cuda", gpu_memory_gb * GIB, "--gpu-memory"
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return "cuda", float(props.total_memory), f"{props.name} memory"
    import os

    try:
        ram = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return "cpu", None, "host memory"
    return "cpu", ram, "host memory"


def dry_run(
    spec: Any,
    gpu_memory_gb: float | None = None,
    base_model: str | None = None,
    nproc: int = 1,
) -> tuple[MemoryPlan, list[str], Callable[[], None]]:
    """The plan for one rank of `spec` (on `base_model` if given; over `nproc` processes, as
    `training.distributed` resolves), its report, and the check to run after printing it
    (raises InvalidInput, exit 2, when the plan does not fit)."""
    if base_model is not None:
        from pydantic import ValidationError

        try:
            spec = spec.with_overrides(base_model=base_model)
        except ValidationError as exc:
            problems = [
                Problem("<overrides>", e["msg"], field=".".join(map(str, e["loc"])) or None)
                for e in exc.errors()
            ]
            raise InvalidInput(problems) from None
    device, capacity, where = device_memory(gpu_memory_gb)
    if device == "cpu" and capacity is not None and nproc > 1:  # ranks share the host
        capacity, where = capacity / nproc, f"host memory / {nproc} processes"
    config = model_config(spec.base_model)
    plan = replicated = estimate(spec, config, device=device, world_size=nproc)
    strategy, why = choose_strategy(spec, replicated, capacity)
    if nproc > 1 and strategy == "fsdp":
        plan = estimate(spec, config, device=device, world_size=nproc, sharded=True)
    t = spec.training
    runs = f"{nproc} processes" if nproc > 1 else "one process"
    lines = [
        f"{spec.name} {spec.version}: {spec.method} on {spec.base_model}, {device}, "
        f"batch {t.batch_size} x seq {t.max_seq_len}, {runs}",
        *plan.lines(capacity),
    ]
    if nproc > 1:
        lines.append(f"  distributed: {strategy} ({why})")
    else:
        lines.append(f"  distributed: with --nproc N > 1, {strategy} ({why})")
    if capacity is not None and plan.total <= capacity:
        lines.append(f"fits: {plan.total / capacity:.0%} of {where}")
    # sharding helps where each rank has its own memory (GPUs), not ranks sharing one host
    hint = fsdp_hint(spec, config, device, capacity) if capacity and device == "cuda" else None

    def check() -> None:
        if capacity:
            check_fits(spec, plan, capacity, where, hint)

    return plan, lines, check
