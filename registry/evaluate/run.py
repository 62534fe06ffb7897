"""Evaluate an adapter against the base model and a prompt-only baseline, then gate it.

Contenders, all answering the same eval items, all on ONE loaded copy of the base model:
- "base": the base model with the spec's system prompt, zero-shot: exactly the input the
  adapter sees, so the delta is what the adapter weights add.
- "prompt_baseline": the base model with the system prompt plus `eval.few_shot` train examples
  as prior chat turns: the prompt-engineering alternative an adapter has to beat to be worth
  shipping (skipped when few_shot is 0).
- "adapter": the adapter under evaluation.
- "previous": the previous published version, when given (for max_regression_vs_previous).

Then: per-item metrics, paired comparisons (stats.py), the regression suites (regression.py:
what the adapter broke that the base could do), general drift (drift.py, a diagnostic), the gate
(gate.py) and the report files (report.py).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from registry.artifact import fingerprint_of, read_provenance
from registry.core.fs import sha256_file
from registry.errors import InvalidInput
from registry.evaluate.drift import general_drift
from registry.evaluate.gate import DELTA_RULES, apply_gate
from registry.evaluate.generate import generate, reference_losses, use_contender
from registry.evaluate.metrics import BINARY_METRICS, higher_is_better, parse_json, text_metrics
from registry.evaluate.regression import run_suites
from registry.evaluate.report import Report, write_report
from registry.evaluate.reportcache import remember_report
from registry.evaluate.stats import SMALL_SAMPLE, Comparison, compare, power_warning
from registry.spec.data import Example, load_examples, normalise, prompt_ids, tokenize_example
from registry.spec.schema import Spec

ADAPTER, PREVIOUS = "adapter", "previous"
_MISSING_JSON = parse_json("")  # the "not JSON" sentinel
LOW_STOP_RATE = 0.9
# Fixed, not the training seed: the same outputs must give the same intervals whatever the seed.
BOOTSTRAP_SEED = 0


def evaluate(
    spec: Spec,
    adapter_dir: Path,
    *,
    out: Path | None = None,
    limit: int | None = None,
    base_model: str | None = None,
    previous_adapter_dir: Path | None = None,
    progress: bool = True,
) -> Report:
    """Run every contender on the eval set, compare, gate, and write the report into `out`."""
    started = time.perf_counter()
    adapter_dir = Path(adapter_dir)
    out = Path(out) if out is not None else adapter_dir
    provenance = _read_provenance(adapter_dir)
    warnings: list[str] = []
    overrides = dict(provenance.get("overrides") or {})
    ref = _base_ref(spec, provenance, base_model, warnings)
    if ref != spec.base_model:
        overrides["base_model"] = ref
    limit = limit or spec.eval.limit
    if limit is not None and limit != spec.eval.limit:
        overrides["eval.limit"] = limit

    items = _eval_items(spec, limit)
    shots = _few_shot(spec, items)
    contenders = ["base", *(["prompt_baseline"] if shots else []), ADAPTER]
    if previous_adapter_dir is not None:
        if _same_base(provenance, _read_provenance(Path(previous_adapter_dir)), warnings):
            contenders.append(PREVIOUS)
    inputs = {c: items for c in contenders}
    if shots:
        system = spec.eval.baseline_system_prompt
        inputs["prompt_baseline"] = [_with_shots(ex, shots, system) for ex in items]

    model, tokenizer, resolved = _load(spec, ref, adapter_dir, previous_adapter_dir, contenders)
    weights = _weights_ids(spec, resolved, adapter_dir, previous_adapter_dir, contenders)
    scores = _score_all(spec, model, tokenizer, contenders, inputs, weights, progress)
    drift = general_drift(
        model,
        tokenizer,
        adapter=ADAPTER,
        base_id=weights["base"],
        batch_size=spec.eval.batch_size,
        progress=progress,
    )

    regression = run_suites(
        spec,
        model,
        tokenizer,
        base_id=weights["base"],
        adapter=ADAPTER,
        adapter_id=weights[ADAPTER],
        progress=progress,
        seed=BOOTSTRAP_SEED,
    )

    metrics = {m: {c: _mean(scores[c][m]) for c in contenders} for m in spec.eval.metrics}
    comparisons = [
        compare(
            m,
            ADAPTER,
            scores[ADAPTER][m],
            other,
            scores[other][m],
            binary=m in BINARY_METRICS,
            samples=spec.eval.bootstrap_samples,
            seed=BOOTSTRAP_SEED,
        )
        for m in spec.eval.metrics
        for other in contenders
        if other != ADAPTER
    ]
    verdict = apply_gate(
        spec.eval.gate,
        metrics=metrics,
        comparisons=comparisons,
        general_drift=drift.value,
        regression=regression,
    )
    warnings += _warnings(spec, items, scores, comparisons, overrides, shots)
    previous_fp = fingerprint_of(previous_adapter_dir) if PREVIOUS in contenders else None
    report = Report(
        name=spec.name,
        version=spec.version,
        fingerprint=provenance.get("fingerprint"),
        n_items=len(items),
        contenders=contenders,
        metrics=metrics,
        comparisons=comparisons,
        general_drift=drift.value,
        gate=verdict,
        regression=regression,
        warnings=warnings,
        items=_item_records(items, contenders, scores),
        overrides=overrides,
        cost={
            "eval_wall_s": round(time.perf_counter() - started, 3),
            "train_wall_s": _train_wall_s(provenance),
        },
        extra={
            "eval_config": spec.eval.model_dump(mode="json"),
            "base_model": resolved.provenance(),
            "adapter": _adapter_info(adapter_dir),
            # What this verdict was measured against: `sync --adopt` reuses it only for the same.
            "previous_fingerprint": previous_fp,
            "training": provenance.get("training") or {},
            "few_shot_ids": [s.id for s in shots],
            "general_drift_detail": {"prompts": len(drift.per_prompt), "top": drift.top(3)},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    report.cost["eval_wall_s"] = round(time.perf_counter() - started, 3)
    write_report(report, out)
    remember_report(
        out, report.to_json(), previous_fp
    )  # lets `registry sync` reuse this evaluation
    return report


# -- inputs ------------------------------------------------------------------------------------


def _read_provenance(adapter_dir: Path) -> dict[str, Any]:
    return read_provenance(adapter_dir, missing_ok=True).to_json()


def _trained_ref(provenance: dict[str, Any]) -> str | None:
    base = provenance.get("base_model")
    if isinstance(base, dict):
        return base.get("ref")
    return base if isinstance(base, str) else None


def _base_ref(spec: Spec, provenance: dict, override: str | None, warnings: list[str]) -> str:
    """The adapter must be evaluated on the base it was trained on: the override, else the one
    registry.json records, else the spec's."""
    trained = _trained_ref(provenance)
    if override and trained and override != trained:
        warnings.append(f"evaluating on {override} but the adapter was trained on {trained}")
    return override or trained or spec.base_model


def _same_base(current: dict, previous: dict, warnings: list[str]) -> bool:
    """A previous version trained on another base cannot run on this one: skip it, loudly."""
    cur, prev = current.get("base_model"), previous.get("base_model")
    if isinstance(cur, dict) and isinstance(prev, dict) and cur.get("sha256") != prev.get("sha256"):
        warnings.append(
            "the previous version was trained on another base model; "
            "max_regression_vs_previous was not checked"
        )
        return False
    return True


def _eval_items(spec: Spec, limit: int | None) -> list[Example]:
    if spec.eval_path is None:
        raise InvalidInput(
            [_problem(spec, "data.eval is required to evaluate an adapter", "data.eval")]
        )
    items = load_examples(spec.eval_path, spec.data.format, spec.data.system_prompt)
    items = items[:limit] if limit else items
    if "json_field_f1" in spec.eval.metrics:
        for ex in items:
            if parse_json(ex.answer) is _MISSING_JSON:
                raise InvalidInput(
                    f"{spec.data.eval}:{ex.line}: json_field_f1 needs JSON reference answers",
                    file=str(spec.eval_path),
                )
    return items


def _problem(spec: Spec, message: str, field: str):
    from registry.errors import Problem

    return Problem(str(spec.path or "adapter.yaml"), message, field=field)


def _few_shot(spec: Spec, items: list[Example]) -> list[Example]:
    """The first `few_shot` train examples, never one whose prompt is also an eval item."""
    if spec.eval.few_shot == 0:
        return []
    eval_prompts = {normalise(ex.prompt_text) for ex in items}
    train = load_examples(spec.train_path, spec.data.format, spec.data.system_prompt)
    return [ex for ex in train if normalise(ex.prompt_text) not in eval_prompts][
        : spec.eval.few_shot
    ]


def _with_shots(item: Example, shots: list[Example], system_prompt: str | None = None) -> Example:
    """The item with solved examples before it: chat turns, or text blocks for completions.
    `system_prompt` (eval.baseline_system_prompt) replaces the item's system turn, or leads
    the text for completions."""
    if item.prompt is not None:
        prefix = "".join(f"{s.prompt}{s.answer}\n\n" for s in shots if s.prompt is not None)
        lead = f"{system_prompt}\n\n" if system_prompt else ""
        return replace(item, prompt=lead + prefix + item.prompt)
    system = [m for m in item.messages[:1] if m["role"] == "system"]
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else list(system)
    for s in shots:
        turns += [m for m in s.messages if m["role"] != "system"]
        turns.append({"role": "assistant", "content": s.answer})
    turns += list(item.messages[len(system) :])
    return replace(item, messages=tuple(turns))


# -- model and scoring -------------------------------------------------------------------------


def _check_adapter_dir(path: Path, what: str) -> None:
    if not (path / "adapter_config.json").is_file():
        raise InvalidInput(f"{what}: no adapter_config.json in {path}", file=str(path))
    if not (path / "adapter_model.safetensors").is_file():
        raise InvalidInput(
            f"{what}: no adapter_model.safetensors in {path} (only safetensors are loaded)",
            file=str(path),
        )


def _load(spec: Spec, ref: str, adapter_dir: Path, previous: Path | None, contenders: list[str]):
    """One base model, the adapter (and the previous version) loaded onto it by name."""
    import torch
    from peft import PeftModel

    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model

    _check_adapter_dir(adapter_dir, "adapter")
    resolved = resolve_base_model(ref)
    tokenizer = load_tokenizer(resolved)
    torch.manual_seed(spec.training.seed)
    base = load_base_model(resolved, quantization=spec.quantization)
    model = PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=ADAPTER)
    if PREVIOUS in contenders and previous is not None:
        _check_adapter_dir(Path(previous), "previous adapter")
        model.load_adapter(str(previous), adapter_name=PREVIOUS)
    model.eval()
    return model, tokenizer, resolved


def _weights_ids(
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


def _score_all(
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


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _item_records(
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


# -- warnings and provenance -------------------------------------------------------------------


def _warnings(
    spec: Spec,
    items: list[Example],
    scores: dict[str, dict[str, Any]],
    comparisons: list[Comparison],
    overrides: dict[str, Any],
    shots: list[Example],
) -> list[str]:
    warnings: list[str] = []
    if len(items) < SMALL_SAMPLE:
        warnings.append(
            f"small eval set: n={len(items)} < {SMALL_SAMPLE}; intervals are wide and approximate"
        )
    by_key = {(c.metric, c.b): c for c in comparisons}
    for rule in spec.eval.gate:
        for key in ("min_delta_vs_base", "min_delta_vs_prompt"):
            threshold = getattr(rule, key)
            comparison = by_key.get((rule.metric, DELTA_RULES[key]))
            if threshold is None or comparison is None:
                continue
            note = power_warning(
                comparison,
                threshold=threshold,
                binary=rule.metric in BINARY_METRICS,
                higher_better=higher_is_better(rule.metric),
            )
            if note:
                warnings.append(note)
    if not spec.eval.gate:
        warnings.append("the spec has no gate rules: every adapter passes")
    if spec.eval.few_shot and len(shots) < spec.eval.few_shot:
        warnings.append(
            f"only {len(shots)} few-shot examples available (asked {spec.eval.few_shot})"
        )
    stop_rate = _mean(scores[ADAPTER]["_stopped"])
    if stop_rate < LOW_STOP_RATE:
        warnings.append(
            f"only {stop_rate:.0%} of adapter answers ended with EOS within "
            f"{spec.eval.max_new_tokens} tokens: answers are cut off (raise eval.max_new_tokens, "
            "or the adapter did not learn to stop)"
        )
    if overrides:
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
        warnings.append(f"made with overrides ({shown}): not publishable as a regular version")
    return warnings


def _train_wall_s(provenance: dict[str, Any]) -> float | None:
    for container in (provenance.get("cost"), provenance.get("training"), provenance):
        if isinstance(container, dict):
            for key in ("train_wall_s", "wall_s", "wall_seconds"):
                if isinstance(container.get(key), (int, float)):
                    return float(container[key])
    return None


def _adapter_info(adapter_dir: Path) -> dict[str, Any]:
    """Shape from adapter_config.json; size and parameter count from the safetensors header."""
    weights = adapter_dir / "adapter_model.safetensors"
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    with open(weights, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    return {
        "method": "dora" if config.get("use_dora") else str(config.get("peft_type", "?")).lower(),
        "r": config.get("r"),
        "alpha": config.get("lora_alpha"),
        "target_modules": config.get("target_modules"),
        "size_bytes": weights.stat().st_size,
        "params": sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__"),
        # The exact bytes this report judged (the fingerprint names inputs, not weights).
        "sha256": {f: sha256_file(adapter_dir / f) for f in ("adapter_config.json", weights.name)},
    }
