"""The contenders of an evaluation on ONE loaded base model, and their per-item scores.

The base model is loaded once; the adapter (and the previous version, when compared) are
loaded onto it by name (ADAPTER, PREVIOUS) and switched on and off by
registry.evaluate.generate.use_contender, so every contender answers the same items with the
same base weights in memory.

Invariants:
- Only safetensors adapters are loaded: a folder without adapter_config.json and
  adapter_model.safetensors is InvalidInput (exit 2) before any weights are read.
- Each contender's outputs are remembered under a content id of what it generates with
  (weights_ids: the base's weights id, plus the adapter files' sha256), never under a path.
- score_all returns scores[contender][metric] as per-item lists in item order, plus the
  private rows "_outputs" (the texts) and "_stopped" (1.0 when the answer ended with EOS).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from registry.core.fs import sha256_file
from registry.errors import InvalidInput
from registry.evaluate.generate import generate, reference_losses, use_contender
from registry.evaluate.metrics import text_metrics
from registry.spec.data import Example, prompt_ids, tokenize_example
from registry.spec.schema import Spec

ADAPTER, PREVIOUS = "adapter", "previous"


def check_adapter_dir(path: Path, what: str) -> None:
    if not (path / "adapter_config.json").is_file():
        raise InvalidInput(f"{what}: no adapter_config.json in {path}", file=str(path))
    if not (path / "adapter_model.safetensors").is_file():
        raise InvalidInput(
            f"{what}: no adapter_model.safetensors in {path} (only safetensors are loaded)",
            file=str(path),
        )


def load_contenders(
    spec: Spec, ref: str, adapter_dir: Path, previous: Path | None, contenders: list[str]
):
    """One base model, the adapter (and the previous version) loaded onto it by name."""
    import torch
    from peft import PeftModel

    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model

    check_adapter_dir(adapter_dir, "adapter")
    resolved = resolve_base_model(ref)
    tokenizer = load_tokenizer(resolved)
    torch.manual_seed(spec.training.seed)
    base = load_base_model(resolved, quantization=spec.quantization)
    model = PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=ADAPTER)
    if PREVIOUS in contenders and previous is not None:
        check_adapter_dir(Path(previous), "previous adapter")
        model.load_adapter(str(previous), adapter_name=PREVIOUS)
    model.eval()
    return model, tokenizer, resolved


def weights_ids(
    spec: Spec, resolved: Any, adapter_dir: Path, previous: Path | None, contenders: list[str]
) -> dict[str, str]:
    """What each contender generates with, by content: outputs are remembered under it."""
    base = resolved.weights_id(spec.quantization)

    def adapter(folder: Path) -> str:
        files = ("adapter_config.json", "adapter_model.safetensors")
        return base + ":adapter:" + ":".join(sha256_file(folder / f) for f in files)

    ids = {"base": base, "prompt_baseline": base, ADAPTER: adapter(adapter_dir)}
    if PREVIOUS in contenders and previous is not None:
        ids[PREVIOUS] = adapter(previous)
    return ids


def score_all(
    spec: Spec,
    model: Any,
    tokenizer: Any,
    contenders: list[str],
    inputs: dict[str, list[Example]],
    weights: dict[str, str],
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """scores[contender][metric] = per-item list; plus "_outputs" and "_stopped"."""
    bound = text_metrics(spec.eval.metrics, spec.eval)
    scores: dict[str, dict[str, Any]] = {}
    for name in contenders:
        examples = inputs[name]
        with use_contender(model, name):
            gens = generate(
                model,
                tokenizer,
                [prompt_ids(tokenizer, ex) for ex in examples],
                max_new_tokens=spec.eval.max_new_tokens,
                batch_size=spec.eval.batch_size,
                progress=progress,
                desc=f"generate: {name}",
                weights_id=weights[name],
            )
            losses = None
            if "loss" in spec.eval.metrics:
                losses = reference_losses(
                    model,
                    tokenizer,
                    [tokenize_example(tokenizer, ex) for ex in examples],
                    batch_size=spec.eval.batch_size,
                    progress=progress,
                    desc=f"loss: {name}",
                )
        row: dict[str, Any] = {
            "_outputs": [g.text for g in gens],
            "_stopped": [float(g.stopped) for g in gens],
        }
        for metric in bound:
            row[metric.name] = [
                metric.score(g.text, ex.answer) for g, ex in zip(gens, examples, strict=True)
            ]
        if losses is not None:
            row["loss"] = losses
        if "stops" in spec.eval.metrics:
            row["stops"] = row["_stopped"]
        scores[name] = row
    return scores


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def item_records(
    items: list[Example], contenders: list[str], scores: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    metrics = [m for m in scores[contenders[0]] if not m.startswith("_")]
    return [
        {
            "id": ex.id,
            "prompt": ex.prompt_text,
            "reference": ex.answer,
            "outputs": {c: scores[c]["_outputs"][i] for c in contenders},
            "scores": {c: {m: scores[c][m][i] for m in metrics} for c in contenders},
        }
        for i, ex in enumerate(items)
    ]
