"""What a finished training leaves: the adapter folder, written whole or not at all.

The folder is a plain PEFT adapter (adapter_model.safetensors + adapter_config.json, what
`PeftModel.from_pretrained(base, folder)` loads) plus registry.json (provenance and training
metrics, registry.artifact.Provenance), training_log.jsonl and loss.png. It is written in a
temporary folder and renamed into place (registry.core.fs.atomic_dir, durable), so the artifact
cache never holds half an adapter.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from registry.artifact import (
    LOSS_PLOT,
    REGISTRY_JSON,
    TRAINING_LOG,
    WEIGHTS,
    Provenance,
    read_provenance,
    write_provenance,
)
from registry.core.fs import atomic_dir
from registry.errors import InvalidInput


def write_adapter(
    target: Path,
    model: Any,
    *,
    model_id: str,
    revision: str,
    log: list[dict[str, Any]],
    provenance: Provenance,
    state_dict: dict[str, Any] | None = None,
) -> None:
    """Write the PEFT folder, log, plot and registry.json into `target` in one rename.

    `state_dict`: the adapter's whole tensors by parameter name, where the model holds only
    shards of them (FSDP, gathered on every rank beforehand); PEFT saves from it."""
    with atomic_dir(target, durable=True) as tmp:
        config = model.peft_config["default"]
        config.base_model_name_or_path = model_id
        # The exact base trained on: the Hub commit, or for a builtin its content hash (e.g.
        # `gguf-q4_1-...`). A builtin is not the Hub's weights, so AutoPeftModel failing on
        # that revision is right; the model card says how to load the matching base.
        config.revision = revision
        # save_embedding_layers=False: the vocabulary is never resized, and "auto" would look
        # the base model up on the Hub (a network call) to find that out.
        model.save_pretrained(
            tmp, safe_serialization=True, save_embedding_layers=False, state_dict=state_dict
        )
        (tmp / "README.md").unlink(missing_ok=True)  # publish writes the model card
        (tmp / TRAINING_LOG).write_text("".join(json.dumps(e) + "\n" for e in log))
        training = provenance.training
        plot_losses(log, training.get("base_val_loss"), tmp / LOSS_PLOT)
        training = {**training, "adapter_size_bytes": (tmp / WEIGHTS).stat().st_size}
        write_provenance(tmp, provenance.updated(training=training))


def copy_adapter(source: Path, out: Path, updates: dict[str, Any]) -> Provenance:
    """Copy a finished folder to `out`, with `updates` applied to its registry.json."""
    if out.exists() and any(out.iterdir()) and not (out / REGISTRY_JSON).exists():
        raise InvalidInput(
            f"{out}: not empty and not a previous training output; refusing to replace it",
            file="--out",
        )
    info = read_provenance(source).updated(**updates)
    with atomic_dir(out, durable=True) as tmp:
        for f in source.iterdir():
            if f.is_file() and f.name != REGISTRY_JSON:
                shutil.copy2(f, tmp / f.name)
        write_provenance(tmp, info)
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


def package_versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    names = {"torch": "torch", "transformers": "transformers", "peft": "peft",
             "bitsandbytes": "bitsandbytes", "registry": "lora-registry"}  # fmt: skip
    return {key: version(dist) for key, dist in names.items()}
