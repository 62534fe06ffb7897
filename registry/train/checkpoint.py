"""Checkpoints of a training in progress, and the RNG states they carry.

A checkpoint is a folder `checkpoint-<step>` in the run's work dir holding everything the loop's
future depends on: trainable weights (and the best ones so far), optimizer and scheduler state,
the RNG states of torch / numpy / python (one set per rank), and the loop's own counters and log.
The data position needs no saving beyond the step: batching.step_examples is a pure function of
it. Every folder is written under a temporary name and renamed into place, so a kill at any
moment leaves either the previous complete checkpoint or the new one, never half of one
(registry.core.fs.atomic_dir, durable: contents are flushed before the rename).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from registry.core.fs import atomic_dir

CHECKPOINTS_KEPT = 2  # complete checkpoints kept; older ones go once a newer one is in place
_PREFIX = "checkpoint-"


# -- RNG states --------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain JSON (no pickle to trust on load)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(
        (np_name, np.array(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_gauss)
    )
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# -- checkpoints -------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    path: Path
    step: int
    weights: dict[str, torch.Tensor]  # trainable parameters by name
    best_weights: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: list[dict[str, Any]]  # one per rank
    state: dict[str, Any]  # the loop's counters and log (JSON)


def save(
    work: Path,
    step: int,
    *,
    weights: dict[str, torch.Tensor],
    best_weights: dict[str, torch.Tensor] | None,
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    rng: list[dict[str, Any]],
    state: dict[str, Any],
) -> Path:
    """Write checkpoint-<step> atomically, then prune all but the last CHECKPOINTS_KEPT."""
    target = work / f"{_PREFIX}{step:08d}"
    with atomic_dir(target, durable=True) as tmp:
        save_file(_cpu(weights), tmp / "adapter.safetensors")
        if best_weights is not None:
            save_file(_cpu(best_weights), tmp / "best_adapter.safetensors")
        torch.save({"optimizer": optimizer, "scheduler": scheduler}, tmp / "trainer.pt")
        (tmp / "rng.json").write_text(json.dumps(rng))
        (tmp / "state.json").write_text(json.dumps({**state, "step": step}))
    for old in complete(work)[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def complete(work: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders start with '.' and never match)."""
    if not work.is_dir():
        return []
    return sorted(p for p in work.glob(f"{_PREFIX}*") if (p / "state.json").exists())


def latest(work: Path) -> Path | None:
    found = complete(work)
    return found[-1] if found else None


def load(path: Path) -> Checkpoint:
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    best = path / "best_adapter.safetensors"
    state = json.loads((path / "state.json").read_text())
    return Checkpoint(
        path=path,
        step=int(state["step"]),
        weights=load_file(path / "adapter.safetensors"),
        best_weights=load_file(best) if best.exists() else None,
        optimizer=trainer["optimizer"],
        scheduler=trainer["scheduler"],
        rng=json.loads((path / "rng.json").read_text()),
        state=state,
    )


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def discard(work: Path) -> None:
    """Remove a finished run's checkpoints (its adapter is in the artifact cache now)."""
    shutil.rmtree(work, ignore_errors=True)
