"""The evaluation report: one data object, written as JSON, Markdown, JUnit XML and a PNG.

report.json is the machine contract (publish and sync read it): Report.to_json() is its one
writer. report.md is the pull-request comment, rendered by report_md.py (every piece of user or
model text through `md()`). junit.xml has one test case per gate condition; metrics.png shows
every comparison's interval against its gate bound. write_report writes all four together.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.evaluate.gate import GateVerdict
from registry.evaluate.metrics import higher_is_better
from registry.evaluate.regression import SuiteResult
from registry.evaluate.report_md import CONTENDER_LABELS, render_markdown
from registry.evaluate.stats import Comparison


@dataclass
class Report:
    """One evaluation's outcome: what report.json holds (to_json), the rest renders it."""

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
