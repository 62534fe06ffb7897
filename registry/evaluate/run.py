"""Evaluate an adapter against the base model and a prompt-only baseline, then gate it.

Contenders, all answering the same eval items, all on ONE loaded copy of the base model:
- "base": the base model with the spec's system prompt, zero-shot: exactly the input the
  adapter sees, so the delta is what the adapter weights add.
- "prompt_baseline": the base model with the system prompt plus `eval.few_shot` train examples
  as prior chat turns: the prompt-engineering alternative an adapter has to beat to be worth
  shipping (skipped when few_shot is 0).
- "adapter": the adapter under evaluation.
- "previous": the previous published version, when given (for max_regression_vs_previous).

The contenders are loaded and scored in contenders.py. Then: per-item metrics, paired
comparisons (stats.py), the regression suites (regression.py: what the adapter broke that the
base could do), general drift (drift.py, a diagnostic), the gate (gate.py) and the report files
(report.py).

Invariants:
- Input problems surface before any model work: the eval set, its JSON references, and a spec
  naming lm-eval tasks without the `lm-eval` extra installed are InvalidInput (exit 2).
- The bootstrap seed is fixed (BOOTSTRAP_SEED), not the training seed: the same outputs give
  the same intervals and verdict.
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
from registry.evaluate.contenders import (
    ADAPTER,
    PREVIOUS,
    item_records,
    load_contenders,
    mean,
    score_all,
    weights_ids,
)
from registry.evaluate.drift import general_drift
from registry.evaluate.gate import DELTA_RULES, apply_gate
from registry.evaluate.lm_eval import entries as lm_eval_entries
from registry.evaluate.lm_eval import require as require_lm_eval
from registry.evaluate.metrics import BINARY_METRICS, higher_is_better, parse_json
from registry.evaluate.regression import run_suites
from registry.evaluate.report import Report, write_report
from registry.evaluate.reportcache import remember_report
from registry.evaluate.stats import SMALL_SAMPLE, Comparison, compare, power_warning
from registry.spec.data import Example, load_examples, normalise
from registry.spec.schema import Spec

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
    if lm_eval_entries(spec):  # the lm-eval extra is missing: exit 2 now, before any generation
        require_lm_eval(spec)
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

    model, tokenizer, resolved = load_contenders(
        spec, ref, adapter_dir, previous_adapter_dir, contenders
    )
    weights = weights_ids(spec, resolved, adapter_dir, previous_adapter_dir, contenders)
    scores = score_all(spec, model, tokenizer, contenders, inputs, weights, progress)
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

    metrics = {m: {c: mean(scores[c][m]) for c in contenders} for m in spec.eval.metrics}
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
        items=item_records(items, contenders, scores),
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
    stop_rate = mean(scores[ADAPTER]["_stopped"])
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
