"""The `eval:` section of the spec: metrics, regression suites and gate rules.

Part of the one schema (registry/spec/schema.py re-exports every name here); split out only to
keep modules small. Same rules: unknown keys are errors, numbers are finite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from registry.spec.eval_checks import json_schema_problem, regex_problem
from registry.spec.paths import path_text_problem

METRICS = (
    "exact_match",  # normalised string equality
    "json_valid",  # the output parses as JSON
    "json_schema",  # parses and matches eval.json_schema
    "json_field_f1",  # field-level F1 of flattened JSON key/value pairs
    "contains",  # the reference (or eval.contains) appears in the output
    "regex",  # the output matches eval.regex
    "rouge_l",  # ROUGE-L F-measure
    "loss",  # token-level loss (perplexity) on the reference answers
    "stops",  # generation ended with EOS before max_new_tokens
)
GATE_METRICS = (*METRICS, "general_drift")


class Strict(BaseModel):
    # NaN/Infinity pass `gt`/`le` bounds unnoticed (inf > 0); no spec number means them
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GateRule(Strict):
    """One gate condition: on a task metric (deltas on the lower bound of the paired 95%
    interval) or on a regression suite (the accuracy drop's bound, the broken count)."""

    metric: Literal[GATE_METRICS] | None = None  # type: ignore[valid-type]
    suite: str | None = Field(None, description="a suite listed in eval.regression")
    min_delta_vs_base: float | None = None
    min_delta_vs_prompt: float | None = None
    max_regression_vs_previous: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None
    max_drop_vs_base: float | None = Field(
        None,
        ge=0,
        le=1,
        description="suite rules: the 95% interval must rule out an accuracy drop beyond this",
    )
    max_broken: int | None = Field(
        None, ge=0, description="suite rules: at most this many items the base got right break"
    )

    @model_validator(mode="after")
    def _has_condition(self) -> GateRule:
        metric_keys = ("min_delta_vs_base", "min_delta_vs_prompt", "max_regression_vs_previous")
        metric_keys += ("min", "max")
        suite_keys = ("max_drop_vs_base", "max_broken")
        if (self.metric is None) == (self.suite is None):
            raise ValueError("a gate rule names exactly one of metric or suite")
        own, other = (suite_keys, metric_keys) if self.suite else (metric_keys, suite_keys)
        what = f"suite {self.suite!r}" if self.suite else f"metric {self.metric!r}"
        wrong = [k for k in other if getattr(self, k) is not None]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} cannot apply to {what}")
        if all(getattr(self, k) is None for k in own):
            raise ValueError(f"gate rule on {what} has no condition")
        return self


class RegressionSuite(Strict):
    """A regression suite the adapter must not break (docs/regression.md): a suite file, or an
    lm-evaluation-harness task run through its Python API (the `lm-eval` extra)."""

    suite: str | None = Field(
        None,
        description="`general` (shipped), a name under regression/ at the repo root, or a "
        ".jsonl path from the repo root",
    )
    lm_eval: str | None = Field(
        None,
        description="instead of `suite`: an lm-evaluation-harness task or group (`arc_easy`, "
        "`mmlu`), right or wrong per item by its own metric; reported and gated as "
        "`lm_eval:<task>` (needs `pip install 'lora-registry[lm-eval]'`)",
    )
    include_path: str | None = Field(
        None,
        description="with lm_eval: a repo folder holding the task's YAML (a local task, run "
        "offline; checked by the registry before lm-eval sees it)",
    )
    metric: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="with lm_eval: the per-item metric that decides right or wrong (default: "
        "the task's first, e.g. `acc`)",
    )
    num_fewshot: int | None = Field(
        None, ge=0, le=32, description="with lm_eval: few-shot examples (default: the task's)"
    )
    limit: int | None = Field(
        None, ge=1, description="the first N items only (with lm_eval: of each task of a group)"
    )

    @property
    def name(self) -> str:
        """The suite's name in reports and gate rules."""
        if self.lm_eval is not None:
            return f"lm_eval:{self.lm_eval}"
        ref = self.suite or ""
        return Path(ref).stem if ref.endswith(".jsonl") else ref

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # Only the keys an entry uses: a suite entry dumps exactly as before lm_eval existed, so
        # the eval_config of published reports (compared by sync and the report cache) matches.
        return {k: v for k, v in handler(self).items() if v is not None or k == "limit"}

    @model_validator(mode="after")
    def _reference(self) -> RegressionSuite:
        if (self.suite is None) == (self.lm_eval is None):
            raise ValueError("a regression entry names exactly one of suite or lm_eval")
        if self.lm_eval is not None:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", self.lm_eval):
                raise ValueError(
                    f"lm_eval {self.lm_eval[:200]!r}: a task name (letters, digits, '_.-')"
                )
            if self.include_path is not None and (
                reason := path_text_problem(self.include_path, suffix="")
            ):
                raise ValueError(f"include_path: {reason}")
            return self
        lm_eval_only = ("include_path", "metric", "num_fewshot")
        if unused := [k for k in lm_eval_only if getattr(self, k) is not None]:
            raise ValueError(f"{', '.join(unused)}: only with lm_eval")
        ref = self.suite
        if ref.endswith(".jsonl"):
            if reason := path_text_problem(ref):
                raise ValueError(f"suite path: {reason}")
        elif not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", ref):
            raise ValueError(
                f"suite {ref!r}: a name ([a-z0-9][a-z0-9_-]*) or a path ending in .jsonl"
            )
        return self


class EvalConfig(Strict):
    """Metrics, the gate, and generation settings for `registry eval`."""

    metrics: list[Literal[METRICS]] = Field(  # type: ignore[valid-type]
        default=["exact_match"], min_length=1
    )
    gate: list[GateRule] = Field(default_factory=list)
    regression: list[RegressionSuite] = Field(
        default_factory=lambda: [RegressionSuite(suite="general")],
        description="suites the base and the adapter both answer: what the adapter broke is"
        " counted, shown and gated by `{suite: NAME, max_drop_vs_base: X}` rules",
    )
    max_new_tokens: int = Field(128, ge=1, le=8192)
    batch_size: int = Field(16, ge=1, le=1024)
    few_shot: int = Field(
        3, ge=0, le=32, description="train examples shown to the prompt-only baseline"
    )
    baseline_system_prompt: str | None = Field(
        None,
        description="the prompt-only baseline's system prompt (default: data.system_prompt);"
        " lets the baseline use a long engineered prompt while the adapter trains on a terse one",
    )
    json_schema: dict[str, Any] | None = Field(None, description="for the json_schema metric")
    regex: str | None = Field(None, description="for the regex metric")
    contains: str | None = Field(None, description="for the contains metric (default: reference)")
    limit: int | None = Field(None, ge=1, description="evaluate on the first N items only")
    bootstrap_samples: int = Field(2000, ge=100, le=100000)

    @field_validator("regression", mode="before")
    @classmethod
    def _suite_names(cls, value: Any) -> Any:
        """`regression: [general, faq]` is short for `[{suite: general}, {suite: faq}]`."""
        if isinstance(value, list):
            return [{"suite": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _metric_settings(self) -> EvalConfig:
        if "json_schema" in self.metrics and self.json_schema is None:
            raise ValueError("metric json_schema needs eval.json_schema")
        if "regex" in self.metrics:
            if self.regex is None:
                raise ValueError("metric regex needs eval.regex")
        if self.regex is not None and (reason := regex_problem(self.regex)):
            raise ValueError(f"eval.regex {reason}")
        if self.json_schema is not None and (reason := json_schema_problem(self.json_schema)):
            raise ValueError(f"eval.json_schema: {reason}")
        suites = [s.name for s in self.regression]
        for rule in self.gate:
            if rule.suite is not None:
                if rule.suite not in suites:
                    raise ValueError(f"gate suite {rule.suite!r} is not listed in eval.regression")
                continue
            if rule.metric not in (*self.metrics, "general_drift"):
                raise ValueError(f"gate metric {rule.metric!r} is not listed in eval.metrics")
            if rule.min_delta_vs_prompt is not None and self.few_shot == 0:
                raise ValueError(
                    "min_delta_vs_prompt needs the prompt baseline: set eval.few_shot >= 1"
                )
            deltas = (rule.min_delta_vs_base, rule.min_delta_vs_prompt)
            if rule.metric == "general_drift" and any(d is not None for d in deltas):
                raise ValueError("general_drift is bounded with min/max, not deltas")
        return self
