"""Data-parallel training: process-group setup, the few collectives the loop needs, and a launcher.

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) every rank runs the same
`train()`; each takes a strided shard of every global batch and gradients are all-reduced by
DistributedDataParallel, so the effective batch equals the single-process one. Only rank 0
writes checkpoints and outputs. `launch()` starts such a run from an ordinary process
(`registry train --nproc N`), and `python -m registry.train.distributed` is the per-rank entry point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from registry.errors import InvalidInput, RegistryError


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


# -- launching ---------------------------------------------------------------------------------


def launch(
    nproc: int,
    spec_json: str,
    *,
    root: Path,
    spec_path: Path | None,
    max_steps: int | None,
    seed: int | None,
    base_model: str | None,
    resume: bool,
    progress: bool,
) -> None:
    """Run `train` in `nproc` processes through torchrun; rank 0 fills the artifact cache."""
    if nproc < 1:
        raise InvalidInput(f"--nproc must be >= 1, got {nproc}", file="--nproc")
    with tempfile.TemporaryDirectory(prefix="registry-ddp-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(spec_json)
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "registry.train.distributed",
            "--spec-json",
            str(spec_file),
            "--root",
            str(root),
        ]
        if spec_path is not None:
            cmd += ["--spec-path", str(spec_path)]
        for flag, value in (
            ("--max-steps", max_steps),
            ("--seed", seed),
            ("--base-model", base_model),
        ):
            if value is not None:
                cmd += [flag, str(value)]
        cmd += ["--resume"] if resume else []
        cmd += [] if progress else ["--quiet"]
        # Output passes straight through: rank 0's progress bar, and any error, reach the user.
        # torchrun's default of one thread per rank suits CPU ranks sharing a machine.
        proc = subprocess.run(cmd, env=dict(os.environ))
        if proc.returncode != 0:
            raise RegistryError(
                f"distributed training failed (exit {proc.returncode}); see the messages above"
            )


def main(argv: list[str] | None = None) -> None:
    """Per-rank entry point (`torchrun ... -m registry.train.distributed --spec-json FILE ...`)."""
    from registry.spec.schema import Spec
    from registry.train.loop import train

    parser = argparse.ArgumentParser(prog="registry.train.distributed")
    parser.add_argument("--spec-json", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--spec-path")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--base-model")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    spec = Spec.model_validate(json.loads(Path(args.spec_json).read_text()))
    spec._root = Path(args.root)
    spec._path = Path(args.spec_path) if args.spec_path else None
    try:
        train(
            spec,
            max_steps=args.max_steps,
            seed=args.seed,
            base_model=args.base_model,
            resume=args.resume,
            progress=not args.quiet,
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
