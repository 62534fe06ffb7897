"""Gate rules on hand-made comparison results (the model-level gate tests live in
test_evaluate.py)."""

from __future__ import annotations

import pytest

from registry.evaluate.gate import apply_gate
from registry.evaluate.stats import Comparison
from registry.spec.schema import GateRule


def cmp(metric: str, b: str, delta: float, low: float, high: float, n: int = 100) -> Comparison:
    return Comparison(metric, "adapter", b, delta, low, high, 0.01, n, "bootstrap", 0.3)


def rule(**kwargs) -> GateRule:
    return GateRule(**kwargs)


def check(rules, comparisons=(), metrics=None, drift=None):
    return apply_gate(
        rules, metrics=metrics or {}, comparisons=list(comparisons), general_drift=drift
    )


def test_delta_rule_uses_the_lower_bound_not_the_point_estimate() -> None:
    rules = [rule(metric="exact_match", min_delta_vs_base=0.2)]
    lucky = check(rules, [cmp("exact_match", "base", delta=0.3, low=0.1, high=0.5)])
    assert not lucky.passed
    [result] = lucky.rules
    assert (result.rule, result.value, result.threshold) == ("min_delta_vs_base", 0.1, 0.2)
    assert "short by 0.1" in result.message
    assert check(rules, [cmp("exact_match", "base", 0.3, 0.25, 0.35)]).passed


def test_adapter_no_better_than_base_fails() -> None:
    verdict = check(
        [rule(metric="exact_match", min_delta_vs_base=0.0)],
        [cmp("exact_match", "base", 0.0, -0.1, 0.1)],
    )
    assert not verdict.passed


def test_lower_is_better_metric_counts_a_drop_as_improvement() -> None:
    rules = [rule(metric="loss", min_delta_vs_base=0.2)]
    # adapter - base in [-0.7, -0.3]: the loss drops by at least 0.3
    assert check(rules, [cmp("loss", "base", -0.5, -0.7, -0.3)]).passed
    assert not check(rules, [cmp("loss", "base", -0.5, -0.7, -0.1)]).passed
    assert not check(rules, [cmp("loss", "base", 0.5, 0.3, 0.7)]).passed


def test_prompt_baseline_rule() -> None:
    rules = [rule(metric="rouge_l", min_delta_vs_prompt=0.05)]
    assert check(rules, [cmp("rouge_l", "prompt_baseline", 0.2, 0.1, 0.3)]).passed
    missing = check(rules, [cmp("rouge_l", "base", 0.2, 0.1, 0.3)])
    assert not missing.passed
    assert "few_shot is 0" in missing.rules[0].message


def test_regression_vs_previous_is_a_non_inferiority_check() -> None:
    rules = [rule(metric="exact_match", max_regression_vs_previous=0.05)]
    skipped = check(rules)
    assert skipped.passed and "skipped" in skipped.rules[0].message
    assert check(rules, [cmp("exact_match", "previous", 0.0, -0.04, 0.04)]).passed
    worse = check(rules, [cmp("exact_match", "previous", -0.02, -0.1, 0.06)])
    assert not worse.passed
    assert worse.rules[0].value == pytest.approx(-0.1)


def test_min_max_on_the_adapter_value_and_drift() -> None:
    metrics = {"json_valid": {"base": 0.2, "adapter": 0.97}}
    rules = [
        rule(metric="json_valid", min=0.95),
        rule(metric="general_drift", max=0.15),
    ]
    assert check(rules, metrics=metrics, drift=0.05).passed
    drifted = check(rules, metrics=metrics, drift=0.4)
    assert [r.passed for r in drifted.rules] == [True, False]
    assert drifted.failing[0].metric == "general_drift"
    not_measured = check(rules, metrics=metrics, drift=None)
    assert not not_measured.passed


def test_one_result_per_condition() -> None:
    verdict = check(
        [rule(metric="exact_match", min_delta_vs_base=0.1, min=0.5, max=1.0)],
        [cmp("exact_match", "base", 0.4, 0.2, 0.6)],
        metrics={"exact_match": {"adapter": 0.6}},
    )
    assert [r.rule for r in verdict.rules] == ["min_delta_vs_base", "min", "max"]
    assert verdict.passed


def test_delta_rule_on_drift_fails_with_a_reason() -> None:
    verdict = check([rule(metric="general_drift", min_delta_vs_base=0.0)], drift=0.0)
    assert not verdict.passed
    assert "min/max" in verdict.rules[0].message


def test_empty_gate_passes() -> None:
    verdict = check([])
    assert verdict.passed and verdict.rules == []
    assert verdict.to_json() == {"passed": True, "rules": []}
