"""The gate: the spec's rules applied to an evaluation's results -> pass/fail with reasons.

Each condition of each rule becomes one checked line (a rule with `min_delta_vs_base` and `min`
is two checks), so a failure always names exactly what was missed and by how much.

- Delta rules (`min_delta_vs_base`, `min_delta_vs_prompt`) compare against the LOWER bound of
  the paired 95% interval of the adapter's improvement, not the point estimate: the adapter
  passes only if the data rule out an improvement smaller than the threshold. A lucky draw of
  eval items cannot pass a gate; a small eval set makes the gate strict, not lenient.
- `max_regression_vs_previous: r` is the same test as a non-inferiority check: the lower bound
  of (adapter - previous) must be >= -r. Skipped (passes) when there is no previous version.
- `min` / `max` apply to the adapter's own value (and to `general_drift`).
- For lower-is-better metrics (`loss`), "improvement" is base - adapter, so `min_delta_vs_base:
  0.1` on loss asks for a loss at least 0.1 nats lower.
- Suite rules (`{suite: general, max_drop_vs_base: 0.05}`) read a regression suite's paired
  accounting (regression.py): the LOWER bound of the accuracy change must be >= -0.05, i.e. the
  data rule out a drop of more than five points; `max_broken` caps the count of items the base
  got right and the adapter broke.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from registry.evaluate.metrics import higher_is_better
from registry.evaluate.stats import Comparison
from registry.spec.schema import GateRule

if TYPE_CHECKING:
    from registry.evaluate.regression import SuiteResult

DRIFT = "general_drift"
# delta rule -> the contender it compares the adapter with (public: run.py's power warnings use it)
DELTA_RULES = {
    "min_delta_vs_base": "base",
    "min_delta_vs_prompt": "prompt_baseline",
    "max_regression_vs_previous": "previous",
}


@dataclass(frozen=True)
class RuleResult:
    rule: str  # the condition's key in the spec, e.g. "min_delta_vs_base"
    metric: str
    value: float | None  # what was compared with the threshold (None: not measured)
    threshold: float
    passed: bool
    message: str


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    rules: list[RuleResult]

    @property
    def failing(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def to_json(self) -> dict:
        return {"passed": self.passed, "rules": [asdict(r) for r in self.rules]}


def _fmt(x: float) -> str:
    return f"{x:+.4g}"


def _delta_check(
    rule_key: str, metric: str, threshold: float, comparison: Comparison | None
) -> RuleResult:
    against = DELTA_RULES[rule_key].replace("_", " ")
    if comparison is None:
        if rule_key == "max_regression_vs_previous":
            return RuleResult(
                rule_key, metric, None, threshold, True, "no previous version to compare: skipped"
            )
        why = " (eval.few_shot is 0)" if against == "prompt baseline" else ""
        return RuleResult(
            rule_key, metric, None, threshold, False, f"no {against} results{why}: cannot check"
        )
    better_up = higher_is_better(metric)
    # Lower bound of the improvement, in the metric's "better" direction.
    low = comparison.ci_low if better_up else -comparison.ci_high
    gain = comparison.delta if better_up else -comparison.delta
    if rule_key == "max_regression_vs_previous":
        bound, passed = -threshold, low >= -threshold
        need = f"must not regress by more than {threshold:g}"
    else:
        bound, passed = threshold, low >= threshold
        need = f"needs >= {threshold:g}"
    word = "improvement" if better_up else "reduction"
    message = (
        f"{metric} {word} vs {against}: {_fmt(gain)} "
        f"(95% CI lower bound {_fmt(low)}, n={comparison.n}); {need}"
    )
    if not passed:
        message += f" -> short by {bound - low:.4g}"
    return RuleResult(rule_key, metric, low, threshold, passed, message)


def _bound_check(rule_key: str, metric: str, threshold: float, value: float | None) -> RuleResult:
    if value is None or math.isnan(value):
        return RuleResult(rule_key, metric, None, threshold, False, f"{metric} was not measured")
    passed = value >= threshold if rule_key == "min" else value <= threshold
    sign = ">=" if rule_key == "min" else "<="
    message = f"{metric} = {value:.4g}; needs {sign} {threshold:g}"
    return RuleResult(rule_key, metric, value, threshold, passed, message)


def within_max_drop(ci_low: float, max_drop: float) -> bool:
    """`max_drop_vs_base`: the interval's lower end rules out a drop bigger than `max_drop`
    (the one test of the rule, also used by calibration.py on resampled suites)."""
    return ci_low >= -max_drop


def _suite_checks(rule: GateRule, result: SuiteResult | None) -> list[RuleResult]:
    suite = f"suite:{rule.suite}"
    checks: list[RuleResult] = []
    for key in ("max_drop_vs_base", "max_broken"):
        threshold = getattr(rule, key)
        if threshold is None:
            continue
        if result is None:
            checks.append(
                RuleResult(key, suite, None, threshold, False, f"suite {rule.suite!r} was not run")
            )
            continue
        counts = (
            f"{result.broken} broken, {result.fixed} fixed, {result.kept} kept "
            f"of {result.n} (base right on {result.base_correct})"
        )
        if key == "max_drop_vs_base":
            low = result.ci[0]
            passed = within_max_drop(low, threshold)
            message = (
                f"{rule.suite}: accuracy {result.base_accuracy:.3f} -> {result.adapter_accuracy:.3f}"
                f" ({_fmt(result.delta)}, 95% CI lower bound {_fmt(low)}); {counts}; "
                f"may drop at most {threshold:g}"
            )
            if not passed:
                message += f" -> over by {-threshold - low:.4g}"
            checks.append(RuleResult(key, suite, low, threshold, passed, message))
        else:
            passed = result.broken <= threshold
            message = f"{rule.suite}: {counts}; at most {threshold:g} may break"
            checks.append(RuleResult(key, suite, float(result.broken), threshold, passed, message))
    return checks


def apply_gate(
    rules: Sequence[GateRule],
    *,
    metrics: Mapping[str, Mapping[str, float]],
    comparisons: Sequence[Comparison],
    general_drift: float | None = None,
    regression: Mapping[str, SuiteResult] | None = None,
    adapter: str = "adapter",
) -> GateVerdict:
    """Check every condition; the gate passes when all pass (an empty gate passes)."""
    by_key = {(c.metric, c.b): c for c in comparisons if c.a == adapter}
    results: list[RuleResult] = []
    for rule in rules:
        if rule.suite is not None:
            results += _suite_checks(rule, (regression or {}).get(rule.suite))
            continue
        for key in ("min_delta_vs_base", "min_delta_vs_prompt", "max_regression_vs_previous"):
            threshold = getattr(rule, key)
            if threshold is None:
                continue
            if rule.metric == DRIFT:
                results.append(
                    RuleResult(
                        key,
                        DRIFT,
                        None,
                        threshold,
                        False,
                        "general_drift is measured against the base already: use min/max",
                    )
                )
                continue
            comparison = by_key.get((rule.metric, DELTA_RULES[key]))
            results.append(_delta_check(key, rule.metric, threshold, comparison))
        for key in ("min", "max"):
            threshold = getattr(rule, key)
            if threshold is None:
                continue
            if rule.metric == DRIFT:
                value = general_drift
            else:
                value = metrics.get(rule.metric, {}).get(adapter)
            results.append(_bound_check(key, rule.metric, threshold, value))
    return GateVerdict(all(r.passed for r in results), results)
