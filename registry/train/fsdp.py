"""Sharded data parallel: FSDP2 (`torch.distributed.fsdp.fully_shard`) over the torchrun ranks.

For bases that do not fit one device: each rank holds 1/N of the base weights and of the
adapter's parameters, gradients and AdamW state, and gathers one unit at a time to compute.
`training.distributed` picks it (`auto`: when registry/train/memory.py says the replicated
model does not fit, `choose`); the launcher is the same as DDP's (registry/train/launch.py).

Invariants:
- Units: every decoder layer; the input embedding and the output head when they are untied;
  the root is the loss head (registry.train.loss.CausalLMLoss, which holds the PEFT model and is
  what the loop calls, not the PEFT model's forward), taking the rest (final norm, a tied
  embedding).
- Numerics are the unsharded model's: no mixed-precision policy (parameters are gathered in
  their own dtypes: a bf16 base, fp32 LoRA), gradients reduce-scattered in fp32 and averaged
  over the ranks, as DDP's all-reduce is; so the loop's loss scaling is the same for both.
- Every rank runs the same number of forward and backward passes (each one gathers every
  unit, a collective): the loop pads a rank's share with zero-weight passes (`lockstep`).
- 4-bit linears (bitsandbytes `Params4bit`) are not sharded: their quantization state does not
  survive FSDP2's conversion to DTensor, so they stay replicated (loaded on each device);
  everything else of a QLoRA model (fp32 embeddings, head, norms, LoRA) is sharded.
- On CUDA the base is loaded on the CPU (`load_device`) and moved to the device unit by unit
  as it is sharded, so no rank ever holds the whole base on its GPU (each rank does hold it
  in host memory while loading).
- Nothing sharded leaves a rank: `full` gathers a parameter (collective: every rank calls it,
  in the same order), `optimizer_state` gathers AdamW's state keyed by parameter name
  (DCP full state dict); `scatter_into` and `load_optimizer_state` take full tensors back.
  A checkpoint or adapter written by an FSDP run is the one a single process would write.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from registry.train import distributed
from registry.train.distributed import Dist


def choose(d: Dist, spec: Any, base_path: Any, device: str) -> str | None:
    """The strategy of this run, "ddp" or "fsdp" (rank 0 decides, every rank agrees); None:
    one process."""
    if not d.enabled:
        return None
    if spec.training.distributed != "auto":
        return spec.training.distributed
    decision = None
    if d.is_main:
        from transformers import AutoConfig

        from registry.train.memory import choose_strategy, estimate

        config = AutoConfig.from_pretrained(base_path, trust_remote_code=False)
        replicated = estimate(spec, config, device=device, world_size=d.world_size)
        decision, _ = choose_strategy(spec, replicated, per_rank_capacity(device))
    return distributed.broadcast(d, decision)


def per_rank_capacity(device: str) -> float | None:
    """One rank's memory: its GPU's, or on CPU the host's shared by this host's ranks."""
    if device.startswith("cuda"):
        return float(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    from registry.train.memory import device_memory

    _, ram, _ = device_memory(None)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return None if ram is None else ram / max(local, 1)


def load_device(strategy: str | None, method: str, device: str) -> str:
    """Where to load the base: the CPU for FSDP (sharding moves it unit by unit), except 4-bit
    bases, which bitsandbytes quantizes on the device and which stay replicated anyway."""
    return "cpu" if strategy == "fsdp" and method != "qlora" else device


def is_4bit(p: torch.Tensor) -> bool:
    return type(p).__name__ == "Params4bit"


def shard(d: Dist, head: torch.nn.Module, model: Any, device: str) -> None:
    """Shard `head` (the loss head holding `model`, a PEFT model) in place over every rank."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cuda" if device.startswith("cuda") else "cpu", (d.world_size,))
    ignored = {p for p in model.parameters() if is_4bit(p)}
    base = model.get_base_model()
    units: list[torch.nn.Module] = list(base.get_decoder().layers)
    embed, out = base.get_input_embeddings(), base.get_output_embeddings()
    if out is not None and out.weight is not embed.weight:  # untied: their own units
        units += [embed, out]
    for unit in units:
        mine = {p for p in unit.parameters() if p in ignored}
        fully_shard(unit, mesh=mesh, ignored_params=mine or None)
    fully_shard(head, mesh=mesh, ignored_params=ignored or None)


def is_sharded(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor: gathered from every rank if sharded (a collective), else itself."""
    return t.full_tensor() if is_sharded(t) else t  # type: ignore[attr-defined]


def scatter_into(p: torch.Tensor, value: torch.Tensor) -> None:
    """Copy the whole tensor `value` into parameter `p` (this rank's shard of it if sharded;
    no communication: every rank holds `value`)."""
    with torch.no_grad():
        if is_sharded(p):
            from torch.distributed.tensor import distribute_tensor

            local = value.to(device=p.device, dtype=p.dtype)
            p.copy_(distribute_tensor(local, p.device_mesh, p.placements, src_data_rank=None))
        else:
            p.copy_(value)


def _options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """AdamW's whole state keyed by parameter name (collective; complete on rank 0)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options())


def load_optimizer_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    names: list[str],
    sharded: bool,
) -> None:
    """Restore a checkpoint's optimizer state, whichever way it was written: by parameter
    index (`optimizer.state_dict()`, a single process or DDP) or by name (an FSDP run), into
    an optimizer over plain or sharded parameters. `names`: the parameters in optimizer order."""
    by_name = any(isinstance(k, str) for k in state.get("state", {}))
    if by_name != sharded:
        key = names.__getitem__ if sharded else {n: i for i, n in enumerate(names)}.__getitem__
        state = {
            "state": {key(k): v for k, v in state["state"].items()},
            "param_groups": [{**g, "params": [key(k) for k in g["params"]]}
                             for g in state["param_groups"]],
        }  # fmt: skip
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_options())


def grad_scaler(device: str, dtype: torch.dtype, sharded: bool) -> Any:
    """A loss scaler where fp16 needs one (CUDA; fp16's narrow exponent underflows small
    gradients); None for bf16 and fp32, which need none. FSDP's scaler also agrees across
    ranks on a step with an inf or nan (each rank sees only its shard of the gradients)."""
    if dtype != torch.float16 or not device.startswith("cuda"):
        return None
    if sharded:
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler("cuda")
    return torch.amp.GradScaler("cuda")
