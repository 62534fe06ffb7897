"""What training writes to disk, always atomically: checkpoints and the finished adapter folder.

A checkpoint is a folder `checkpoint-<step>` in the run's work dir holding everything the loop's
future depends on: trainable weights (and the best ones so far), optimizer and scheduler state,
the RNG states of torch / numpy / python (one set per rank), and the loop's own counters and log.
The data position needs no saving beyond the step: batching.step_examples is a pure function of
it. Every folder is written under a temporary name and renamed into place, so a kill at any
moment leaves either the previous complete checkpoint or the new one, never half of one.

The finished folder is a plain PEFT adapter (adapter_model.safetensors + adapter_config.json,
what `PeftModel.from_pretrained(base, folder)` loads) plus registry.json (provenance and
training metrics), training_log.jsonl and loss.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from registry.spec.base_model import file_lock

KEEP = 2  # complete checkpoints kept; older ones are deleted once a newer one is in place
_PREFIX = "checkpoint-"


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it becomes `target` in one rename,
    so readers (other processes sharing a cache) see a whole file or none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder next to `target`; on success it replaces `target` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}."))
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            # rename() cannot replace a non-empty folder: move the old one aside first
            old = target.with_name(f".old-{target.name}.{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush file contents before the rename publishes them (a power cut must not expose zeros)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


# Two trainings of one fingerprint run one after the other, not together.
locked = file_lock


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
    """Write checkpoint-<step> atomically, then prune all but the last KEEP."""
    target = work / f"{_PREFIX}{step:08d}"
    with atomic_dir(target) as tmp:
        save_file(_cpu(weights), tmp / "adapter.safetensors")
        if best_weights is not None:
            save_file(_cpu(best_weights), tmp / "best_adapter.safetensors")
        torch.save({"optimizer": optimizer, "scheduler": scheduler}, tmp / "trainer.pt")
        (tmp / "rng.json").write_text(json.dumps(rng))
        (tmp / "state.json").write_text(json.dumps({**state, "step": step}))
    for old in complete(work)[:-KEEP]:
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


# -- the finished adapter folder ---------------------------------------------------------------

ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROVENANCE = "registry.json"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def is_complete(folder: Path) -> bool:
    return (folder / PROVENANCE).exists() and (folder / ADAPTER_WEIGHTS).exists()


def write_adapter(
    target: Path,
    model,
    *,
    model_id: str,
    revision: str,
    log: list[dict[str, Any]],
    provenance: dict[str, Any],
) -> None:
    """Write the PEFT folder, log, plot and registry.json into `target` in one rename."""
    with atomic_dir(target) as tmp:
        config = model.peft_config["default"]
        config.base_model_name_or_path = model_id
        # PEFT's AutoPeftModel loads the base at this revision: only a real Hub commit fits
        # (a builtin's revision is a content hash, kept in registry.json instead).
        config.revision = revision if _HEX40.match(revision) else None
        # save_embedding_layers=False: the vocabulary is never resized, and "auto" would look
        # the base model up on the Hub (a network call) to find that out.
        model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False)
        (tmp / "README.md").unlink(missing_ok=True)  # publish writes the model card
        (tmp / "training_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
        training = provenance["training"]
        plot_losses(log, training.get("base_val_loss"), tmp / "loss.png")
        training["adapter_size_bytes"] = (tmp / ADAPTER_WEIGHTS).stat().st_size
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")


def copy_adapter(source: Path, out: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Copy a finished folder to `out`, with `updates` applied to its registry.json."""
    if out.exists() and any(out.iterdir()) and not (out / PROVENANCE).exists():
        from registry.errors import InvalidInput

        raise InvalidInput(
            f"{out}: not empty and not a previous training output; refusing to replace it",
            file="--out",
        )
    info = {**json.loads((source / PROVENANCE).read_text()), **updates}
    with atomic_dir(out) as tmp:
        for f in source.iterdir():
            if f.is_file() and f.name != PROVENANCE:
                shutil.copy2(f, tmp / f.name)
        (tmp / PROVENANCE).write_text(json.dumps(info, indent=2) + "\n")
    return info


def plot_losses(log: list[dict[str, Any]], base_val: float | None, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(fig)  # the object API: no pyplot global state, no display needed
    ax = fig.add_subplot()
    ax.plot([e["step"] for e in log], [e["loss"] for e in log], label="train", lw=1)
    val = [(e["step"], e["val_loss"]) for e in log if e.get("val_loss") is not None]
    if base_val is not None:
        val.insert(0, (0, base_val))  # the base model, before training
    if val:
        ax.plot(*zip(*val, strict=True), marker="o", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def git_commit(folder: Path) -> str | None:
    """HEAD of the git repository holding `folder`, or None outside one."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def package_versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    names = {"torch": "torch", "transformers": "transformers", "peft": "peft",
             "bitsandbytes": "bitsandbytes", "registry": "lora-registry"}  # fmt: skip
    return {key: version(dist) for key, dist in names.items()}
