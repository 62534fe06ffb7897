"""`registry train --nproc N`: start N data-parallel ranks on this machine through torchrun,
and wait.

Each rank runs registry/train/worker.py with the spec (as JSON in a temporary file, so the
ranks train exactly what this process loaded) and the same TrainOptions (one process each);
the ranks replicate (DDP) or shard (FSDP) the base as `training.distributed` resolves.
Rank 0 fills the artifact cache; the caller then delivers from it like any cache hit.
Several machines: one torchrun per node with a rendezvous (the worker's docstring has the line).
No torch import here: torchrun is a separate process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from registry.errors import InvalidInput, RegistryError
from registry.spec.schema import Spec
from registry.train.options import TrainOptions

WORKER = "registry.train.worker"


def worker_argv(spec_file: Path, spec: Spec, options: TrainOptions) -> list[str]:
    """The per-rank arguments, parsed back by registry.train.worker.main."""
    argv = ["--spec-json", str(spec_file), "--root", str(spec.root)]
    if spec.path is not None:
        argv += ["--spec-path", str(spec.path)]
    return argv + options.for_rank().to_argv()


def launch(spec: Spec, options: TrainOptions) -> None:
    """Run `train` in `options.nproc` processes through torchrun."""
    if options.nproc < 1:
        raise InvalidInput(f"--nproc must be >= 1, got {options.nproc}", file="--nproc")
    with tempfile.TemporaryDirectory(prefix="registry-ddp-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(spec.model_dump_json())
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={options.nproc}", "-m", WORKER,
               *worker_argv(spec_file, spec, options)]  # fmt: skip
        # Output passes straight through: rank 0's progress bar, and any error, reach the user.
        # torchrun's default of one thread per rank suits CPU ranks sharing a machine.
        proc = subprocess.run(cmd, env=dict(os.environ))
        if proc.returncode != 0:
            raise RegistryError(
                f"distributed training failed (exit {proc.returncode}); see the messages above"
            )
