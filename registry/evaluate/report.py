"""The evaluation report: one data object, written as JSON, Markdown, JUnit XML and a PNG.

report.json is the machine contract (publish and sync read it); report.md is the pull-request
comment, so it starts with a hidden marker the comment job finds it by, then the verdict. Every
piece of user or model text in the Markdown passes through `md()`: model outputs are untrusted
and must not be able to inject HTML, links, images, @mentions or break the tables.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.evaluate.gate import GateVerdict
from registry.evaluate.markdown import md
from registry.evaluate.markdown import num as _num
from registry.evaluate.markdown import signed as _signed
from registry.evaluate.metrics import BINARY_METRICS, higher_is_better
from registry.evaluate.regression import SuiteResult
from registry.evaluate.regression import render_markdown as render_regression
from registry.evaluate.stats import SMALL_SAMPLE, Comparison

MARKER = "<!-- adapter-registry-report -->"
CONTENDER_LABELS = {
    "base": "base",
    "prompt_baseline": "prompt baseline",
    "adapter": "adapter",
    "previous": "previous",
}
WORST_EXAMPLES = 5


@dataclass
class Report:
    name: str
    version: str
    fingerprint: str | None
    n_items: int
    contenders: list[str]
    metrics: dict[str, dict[str, float]]
    comparisons: list[Comparison]
    general_drift: float | None
    gate: GateVerdict
    warnings: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # base_model, adapter, training, ...
    regression: dict[str, SuiteResult] = field(default_factory=dict)  # suite name -> accounting

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def summary(self) -> str:
        """Plain-text verdict for the terminal: the gate lines, adapter vs base, warnings."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"gate {verdict}: {self.name} {self.version} ({self.n_items} eval items)"]
        lines += [f"  {'ok  ' if r.passed else 'FAIL'}  {r.message}" for r in self.gate.rules]
        for c in self.comparisons:
            if c.b == "base":
                values = self.metrics[c.metric]
                lines.append(
                    f"  {c.metric}: base {values['base']:.4g} -> adapter {values['adapter']:.4g}"
                    f" (delta {c.delta:+.4g}, 95% CI [{c.ci_low:+.4g}, {c.ci_high:+.4g}],"
                    f" p={c.p_value:.3g})"
                )
        for name, r in self.regression.items():
            lines.append(
                f"  regression {name}: {r.broken} broken, {r.fixed} fixed of {r.n}"
                f" (accuracy {r.base_accuracy:.3f} -> {r.adapter_accuracy:.3f}, delta"
                f" {r.delta:+.3f}, 95% CI [{r.ci[0]:+.3f}, {r.ci[1]:+.3f}], p={r.p:.3g})"
            )
        if self.general_drift is not None:
            lines.append(f"  general_drift: {self.general_drift:.4g} nats/token (diagnostic)")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "n_items": self.n_items,
            "contenders": self.contenders,
            "metrics": self.metrics,
            "comparisons": [c.to_json() for c in self.comparisons],
            "general_drift": self.general_drift,
            "gate": self.gate.to_json(),
            "regression": {name: r.to_json() for name, r in self.regression.items()},
            "warnings": self.warnings,
            "items": self.items,
            "overrides": self.overrides,
            "cost": self.cost,
            **self.extra,
        }


# -- report.md ---------------------------------------------------------------------------------


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


# -- junit.xml and metrics.png -----------------------------------------------------------------


def render_junit(report: Report) -> str:
    """One test case per gate condition, so CI test views list exactly what failed."""
    suite = ET.Element(
        "testsuite",
        name=f"adapter-gate.{report.name}",
        tests=str(max(1, len(report.gate.rules))),
        failures=str(len(report.gate.failing)),
        time=f"{report.cost.get('eval_wall_s') or 0:.3f}",
    )
    if not report.gate.rules:
        ET.SubElement(suite, "testcase", classname=f"gate.{report.name}", name="no gate rules")
    for r in report.gate.rules:
        case = ET.SubElement(
            suite, "testcase", classname=f"gate.{report.name}", name=f"{r.metric} {r.rule}"
        )
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=r.message)
            failure.text = r.message
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _delta_rows(report: Report) -> list[tuple[str, float, float, float, float | None]]:
    """(label, delta, ci low, ci high, gate bound) in the metric's "better" direction."""
    thresholds: dict[tuple[str, str], float] = {}
    for rule in report.gate.rules:
        against = {"min_delta_vs_base": "base", "min_delta_vs_prompt": "prompt_baseline"}
        if rule.rule in against:
            thresholds[(rule.metric, against[rule.rule])] = rule.threshold
        elif rule.rule == "max_regression_vs_previous":
            thresholds[(rule.metric, "previous")] = -rule.threshold
        elif rule.rule == "max_drop_vs_base":
            thresholds[(rule.metric, "base")] = -rule.threshold
    rows = []
    for c in report.comparisons:
        sign = 1.0 if higher_is_better(c.metric) else -1.0
        low, high = sorted((sign * c.ci_low, sign * c.ci_high))
        label = f"{c.metric} vs {CONTENDER_LABELS.get(c.b, c.b)}"
        rows.append((label, sign * c.delta, low, high, thresholds.get((c.metric, c.b))))
    for name, r in report.regression.items():
        rows.append(
            (
                f"suite {name} vs base",
                r.delta,
                r.ci[0],
                r.ci[1],
                thresholds.get((f"suite:{name}", "base")),
            )
        )
    return rows


def render_png(report: Report, path: Path) -> None:
    """Every comparison as the adapter's improvement with its 95% interval, the gate's bound as
    a red tick: a bar whose interval lies right of its tick passes. Regression suites too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _delta_rows(report)
    height = 1.0 + 0.45 * max(1, len(rows))
    fig, ax = plt.subplots(figsize=(7.5, height))
    for y, (_label, delta, low, high, bound) in enumerate(rows):
        colour = "#2e7d32" if low >= (bound if bound is not None else 0.0) else "#c62828"
        ax.errorbar(
            delta, y, xerr=[[delta - low], [high - delta]], fmt="o", color=colour, capsize=4
        )
        ax.annotate(
            f"{delta:+.3g}",
            (delta, y),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
        if bound is not None:
            ax.plot([bound, bound], [y - 0.35, y + 0.35], color="#c62828", linewidth=2)
    ax.axvline(0.0, color="#9e9e9e", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(rows)), [label for label, *_ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(
        "adapter improvement (higher is better), 95% paired CI; red tick = gate bound", fontsize=8
    )
    verdict = "PASSED" if report.passed else "FAILED"
    drift = (
        f", general_drift {report.general_drift:.3g}" if report.general_drift is not None else ""
    )
    ax.set_title(
        f"{report.name} {report.version}: gate {verdict} (n={report.n_items}{drift})", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """Write all four files into `out`; append the Markdown to the GitHub step summary if set."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "md": out / "report.md",
        "junit": out / "junit.xml",
        "png": out / "metrics.png",
    }
    markdown = render_markdown(report)
    paths["json"].write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    paths["md"].write_text(markdown, encoding="utf-8")
    paths["junit"].write_text(render_junit(report), encoding="utf-8")
    render_png(report, paths["png"])
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    return paths
