"""Data-parallel training: process-group setup and the few collectives the loop needs.

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) every rank runs the same
`train()`; each takes a strided shard of every global batch and gradients are all-reduced by
DistributedDataParallel (`wrap`), or reduce-scattered by FSDP2 when the base is sharded
(registry/train/fsdp.py), so the effective batch equals the single-process one. Only rank 0
writes checkpoints and outputs. Starting such a run is registry/train/launch.py (the parent
side, `registry train --nproc N`) and registry/train/worker.py (each rank's entry point).
With one process every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> Dist:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, local)


def device_for(d: Dist, default: str) -> str:
    return f"cuda:{d.local_rank}" if default.startswith("cuda") and d.enabled else default


def sum_all(d: Dist, values: list[float], device: str = "cpu") -> list[float]:
    """Sum numbers across ranks (float64, so token counts stay exact)."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def max_all(d: Dist, value: int, device: str = "cpu") -> int:
    """The largest of every rank's `value`."""
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast(d: Dist, value: Any) -> Any:
    """Rank 0's value, on every rank (decisions such as 'cache hit' must agree everywhere)."""
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(d: Dist, value: Any) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not d.enabled:
        return [value]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (a rank's last act)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(d: Dist, module: torch.nn.Module, device: str) -> torch.nn.Module:
    """DistributedDataParallel over the trainable parameters only.

    Frozen base weights (possibly 4-bit) are identical on every rank by construction; telling
    DDP to ignore them skips broadcasting hundreds of MB at start and works with bitsandbytes.
    """
    if not d.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    frozen += [n for n, _ in module.named_buffers()]
    DDP._set_params_and_buffers_to_ignore_for_model(module, frozen)
    ids = [d.local_rank] if device.startswith("cuda") else None
    return DDP(module, device_ids=ids, broadcast_buffers=False)


def gradient_sync(net: torch.nn.Module, last_micro: bool) -> contextlib.AbstractContextManager:
    """Around one micro-batch's backward: gradients cross the ranks on the step's last one
    only (DDP: `no_sync` on the others; FSDP: reduce-scatter off on the others)."""
    if hasattr(net, "set_requires_gradient_sync"):  # an FSDP2 module
        net.set_requires_gradient_sync(last_micro)
        return contextlib.nullcontext()
    if last_micro or not hasattr(net, "no_sync"):
        return contextlib.nullcontext()
    return net.no_sync()
