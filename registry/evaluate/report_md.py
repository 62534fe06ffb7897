"""report.md, the pull-request comment: the verdict, the metrics and gate tables, the regression
suites' broken items, the worst examples side by side, and what was evaluated at what cost.

Invariants:
- It starts with MARKER, a hidden line the comment job finds its comment by
  (.github/workflows/pr-comment.yml), then the verdict.
- Every piece of user or model text passes through registry.evaluate.markdown.md(): model
  outputs and PR-controlled strings are untrusted and cannot inject HTML, links, images,
  @mentions or break the tables. Numbers are formatted by num() / signed().
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.evaluate.markdown import md
from registry.evaluate.markdown import num as _num
from registry.evaluate.markdown import signed as _signed
from registry.evaluate.metrics import BINARY_METRICS, higher_is_better
from registry.evaluate.regression import render_markdown as render_regression
from registry.evaluate.stats import SMALL_SAMPLE

if TYPE_CHECKING:
    from registry.evaluate.report import Report

MARKER = "<!-- adapter-registry-report -->"
CONTENDER_LABELS = {
    "base": "base",
    "prompt_baseline": "prompt baseline",
    "adapter": "adapter",
    "previous": "previous",
}
WORST_EXAMPLES = 5


def render_markdown(report: Report) -> str:
    lines = [MARKER]
    title = f"{md(report.name)} {md(report.version)}"
    if report.passed:
        lines.append(f"## ✅ Gate PASSED: {title}")
    else:
        lines.append(f"## ❌ Gate FAILED: {title}")
        lines.append("")
        lines.extend(
            f"- **{md(r.metric)} {md(r.rule)}**: {md(r.message, None)}" for r in report.gate.failing
        )
    lines.append("")
    lines.extend(_metrics_table(report))
    lines.append("")
    lines.extend(_gate_table(report))
    if report.regression:
        lines.append("")
        lines.extend(render_regression(report.regression, report.gate.rules))
    if report.warnings:
        lines.append("")
        lines.extend(f"> ⚠️ {md(w, None)}  " for w in report.warnings)
    lines.append("")
    lines.extend(_worst_examples(report))
    lines.append("")
    lines.extend(_provenance(report))
    return "\n".join(lines) + "\n"


def _metrics_table(report: Report) -> list[str]:
    others = [c for c in report.contenders if c != "adapter"]
    by_key = {(c.metric, c.b): c for c in report.comparisons}
    header = ["metric", *(CONTENDER_LABELS.get(c, c) for c in report.contenders)]
    for other in others:
        header += [f"Δ vs {CONTENDER_LABELS.get(other, other)} [95% CI]", "p"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric, values in report.metrics.items():
        arrow = "↑" if higher_is_better(metric) else "↓"
        cells = [f"{md(metric)} {arrow}", *(_num(values.get(c)) for c in report.contenders)]
        for other in others:
            c = by_key.get((metric, other))
            if c is None:
                cells += ["–", "–"]
            else:
                cells += [
                    f"{_signed(c.delta)} [{_signed(c.ci_low)}, {_signed(c.ci_high)}]",
                    f"{c.p_value:.3g}",
                ]
        rows.append("| " + " | ".join(cells) + " |")
    if report.general_drift is not None:
        cells = ["general\\_drift ↓", *("0" if c == "base" else "–" for c in report.contenders)]
        cells[1 + report.contenders.index("adapter")] = _num(report.general_drift, 4)
        cells += ["–", "–"] * len(others)
        rows.append("| " + " | ".join(cells) + " |")
    n = report.n_items
    note = f"n = {n} eval items, paired bootstrap intervals, McNemar p for 0/1 metrics."
    if n < SMALL_SAMPLE:
        note += f" **Small sample (n < {SMALL_SAMPLE})**: intervals are wide and approximate."
    drift = report.extra.get("general_drift_detail", {})
    if report.general_drift is not None and drift:
        note += (
            f" general\\_drift: KL(base ‖ adapter) in nats/token on {drift.get('prompts', '?')}"
            " general prompts."
        )
    return ["### Metrics", "", *rows, "", note]


def _gate_table(report: Report) -> list[str]:
    if not report.gate.rules:
        return ["### Gate", "", "No gate rules: every adapter passes."]
    rows = [
        "### Gate",
        "",
        "| rule | metric | value | threshold | result |",
        "|---|---|---|---|---|",
    ]
    for r in report.gate.rules:
        mark = "✅" if r.passed else "❌"
        rows.append(
            f"| {md(r.rule)} | {md(r.metric)} | {_num(r.value, 4)} | {r.threshold:g} | {mark} |"
        )
    return rows


def primary_metric(report: Report) -> str | None:
    """The metric worst examples are ranked by: the first gated text metric, else the first."""
    gated = [r.metric for r in report.gate.rules if r.metric in report.metrics]
    candidates = [m for m in gated + list(report.metrics) if m != "stops"]
    return candidates[0] if candidates else None


def worst_items(report: Report, k: int = WORST_EXAMPLES) -> list[dict[str, Any]]:
    """Items where the adapter loses most to the base (then: where it is simply wrong)."""
    metric = primary_metric(report)
    if metric is None:
        return []
    sign = 1 if higher_is_better(metric) else -1

    def key(item: dict[str, Any]) -> tuple[float, float]:
        scores = item["scores"]
        adapter = sign * scores["adapter"][metric]
        return (adapter - sign * scores["base"][metric], adapter)

    ranked = sorted(report.items, key=key)
    best = 1.0 if metric in BINARY_METRICS or metric in ("json_field_f1", "rouge_l") else None
    chosen = [
        it
        for it in ranked
        if key(it)[0] < 0 or (best is not None and it["scores"]["adapter"][metric] < best)
    ]
    return chosen[:k]


def _worst_examples(report: Report) -> list[str]:
    metric = primary_metric(report)
    items = worst_items(report)
    title = f"### Worst examples (by {md(metric)})" if metric else "### Worst examples"
    if not items:
        return [
            title,
            "",
            "None: the adapter is right, or at least as good as the base, everywhere.",
        ]
    shown = [c for c in report.contenders if c in ("base", "adapter", "previous")]
    header = ["id", "prompt", "reference", *(CONTENDER_LABELS[c] for c in shown)]
    rows = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for it in items:
        cells = [md(it["id"], 40), md(it["prompt"]), md(it["reference"])]
        for c in shown:
            score = it["scores"][c].get(metric)
            cells.append(f"{md(it['outputs'].get(c, ''))} ({_num(score, 2)})")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _provenance(report: Report) -> list[str]:
    extra = report.extra
    lines = ["### Adapter and cost", ""]
    adapter = extra.get("adapter", {})
    if adapter:
        size = adapter.get("size_bytes")
        params = adapter.get("params")
        lines.append(
            f"- adapter: {md(adapter.get('method', '?'))}, r={md(adapter.get('r', '?'))}, "
            f"{_size(size)}, {params:,} parameters"
            if params is not None
            else f"- adapter: {_size(size)}"
        )
    base = extra.get("base_model", {})
    if base:
        revision = md(str(base.get("revision", ""))[:16])
        lines.append(f"- base model: {md(base.get('ref', '?'), 120)} ({revision})")
    training = extra.get("training") or {}
    if training:
        parts = [
            f"{md(k, 40)}={md(_short(v), 40)}"
            for k, v in training.items()
            if not isinstance(v, (dict, list))
        ]
        lines.append("- training: " + ", ".join(parts))
    cost = report.cost
    eval_s, train_s = cost.get("eval_wall_s"), cost.get("train_wall_s")
    lines.append(
        f"- wall time: eval {_num(eval_s, 1)} s"
        + (f", training {_num(train_s, 1)} s" if isinstance(train_s, (int, float)) else "")
    )
    if report.fingerprint:
        lines.append(f"- fingerprint: {md(report.fingerprint, 80)}")
    if report.overrides:
        shown = ", ".join(f"{md(k, 40)}={md(v, 80)}" for k, v in report.overrides.items())
        lines.append(f"- **overrides** (smoke run, not publishable as a regular version): {shown}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
