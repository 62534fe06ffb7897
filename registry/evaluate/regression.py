"""Regression suites: what the adapter broke that the base model could do, counted item by item.

A suite is a JSONL file of prompts with checkable answers (checks.py, suite.py). The base model
and the adapter answer every item with the same input (the item's own system prompt, or none:
a general user does not send the adapter's task prompt); a checker says right or wrong. Per
suite the accounting is paired:

- `kept`: both right; `broken`: base right, adapter wrong; `fixed`: base wrong, adapter right.
- `delta`: adapter accuracy - base accuracy = (fixed - broken) / n, with its paired 95% bootstrap
  interval and the exact McNemar p (stats.compare, the same statistics as the task metrics).

A gate rule `{suite: general, max_drop_vs_base: 0.05}` passes when the interval's LOWER bound
of delta is >= -0.05: the data must rule out a drop bigger than five points. A small or noisy
suite therefore fails rather than passing by luck, and the bound can be set before training
with no per-adapter calibration. Suites are found by name: `general` ships in the package;
another bare name is `regression/<name>.jsonl` at the repo root (shared by adapters); anything
ending in `.jsonl` is a path from the repo root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from registry.evaluate.generate import BASE, generate, use_contender
from registry.evaluate.stats import compare
from registry.spec.checks import describe
from registry.spec.suite import GENERAL, load_suites

if TYPE_CHECKING:
    from registry.spec.schema import Spec
    from registry.spec.suite import Suite

BROKEN_SHOWN = 10  # broken items listed in report.md per suite (report.json has them all)


@dataclass
class SuiteResult:
    """The paired accounting of one suite (report.json's `regression[<suite>]`)."""

    suite: str
    source: str
    n: int
    base_correct: int
    adapter_correct: int
    broken: int
    fixed: int
    kept: int
    delta: float
    ci: tuple[float, float]
    p: float
    broken_items: list[dict[str, Any]] = field(default_factory=list)
    # One character per item in suite order ("1" right, "0" wrong): lets anyone recount or
    # resample the suite from the report alone (docs/calibration.md does).
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def base_accuracy(self) -> float:
        return self.base_correct / self.n if self.n else 0.0

    @property
    def adapter_accuracy(self) -> float:
        return self.adapter_correct / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci)
        return out


def _prompt_ids(tokenizer: Any, item: Any) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            item.messages(), tokenize=False, add_generation_prompt=True
        )
    else:  # a plain LM: the system text leads the prompt
        text = f"{item.system}\n\n{item.prompt}\n" if item.system else f"{item.prompt}\n"
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def suite_answers(
    model: Any,
    tokenizer: Any,
    items: Sequence[Any],
    default_tokens: int,
    *,
    contender: str,
    weights_id: str | None,
    batch_size: int,
    progress: bool,
    desc: str,
) -> list[str]:
    """Greedy answers of `contender` to a suite's items, in item order (grouped by their
    max_new_tokens); remembered in the registry cache when `weights_id` names the weights."""
    prompts = [_prompt_ids(tokenizer, it) for it in items]
    budgets = [it.max_new_tokens or default_tokens for it in items]
    answers: list[str] = [""] * len(items)
    with use_contender(model, contender):
        for budget in sorted(set(budgets)):
            idx = [i for i, b in enumerate(budgets) if b == budget]
            gens = generate(
                model,
                tokenizer,
                [prompts[i] for i in idx],
                max_new_tokens=budget,
                batch_size=batch_size,
                progress=progress,
                desc=desc,
                weights_id=weights_id,
            )
            for i, gen in zip(idx, gens, strict=True):
                answers[i] = gen.text
    return answers


def account(
    name: str,
    source: str,
    items: Sequence[Any],
    base_answers: Sequence[str],
    adapter_answers: Sequence[str],
    base_ok: Sequence[bool],
    adapter_ok: Sequence[bool],
    *,
    samples: int = 2000,
    seed: int = 0,
) -> SuiteResult:
    """The paired counts, the accuracy change with its interval and McNemar p, broken items."""
    n = len(items)
    if not n:
        raise ValueError(f"suite {name!r} has no items")
    broken = [i for i in range(n) if base_ok[i] and not adapter_ok[i]]
    fixed = sum(1 for i in range(n) if adapter_ok[i] and not base_ok[i])
    kept = sum(1 for i in range(n) if adapter_ok[i] and base_ok[i])
    c = compare(
        f"regression:{name}",
        "adapter",
        [float(x) for x in adapter_ok],
        BASE,
        [float(x) for x in base_ok],
        binary=True,
        samples=samples,
        seed=seed,
    )
    return SuiteResult(
        suite=name,
        source=source,
        n=n,
        base_correct=sum(map(bool, base_ok)),
        adapter_correct=sum(map(bool, adapter_ok)),
        broken=len(broken),
        fixed=fixed,
        kept=kept,
        delta=c.delta,
        ci=(c.ci_low, c.ci_high),
        p=c.p_value,
        broken_items=[
            {
                "id": items[i].id,
                "prompt": items[i].prompt,
                "check": describe(items[i]),
                "base": base_answers[i],
                "adapter": adapter_answers[i],
            }
            for i in broken
        ],
        outcomes={
            "base": "".join("1" if x else "0" for x in base_ok),
            "adapter": "".join("1" if x else "0" for x in adapter_ok),
        },
    )


def run_suites(
    spec: Spec,
    model: Any,
    tokenizer: Any,
    *,
    base_id: str,
    adapter: str,
    adapter_id: str,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, SuiteResult]:
    """Every suite of the spec, answered by the base (adapter disabled) and by `adapter`."""
    if not spec.eval.regression:
        return {}
    from registry.spec.checks import check

    results: dict[str, SuiteResult] = {}
    for name, limit, suite in load_suites(spec):
        items = suite.items[:limit] if limit else suite.items
        default_tokens = suite.max_new_tokens
        answers = {}
        for contender, weights_id in ((BASE, base_id), (adapter, adapter_id)):
            answers[contender] = suite_answers(
                model,
                tokenizer,
                items,
                default_tokens,
                contender=contender,
                weights_id=weights_id,
                batch_size=spec.eval.batch_size,
                progress=progress,
                desc=f"regression {name}: {contender}",
            )
        ok = {c: [check(it, a) for it, a in zip(items, answers[c], strict=True)] for c in answers}
        results[name] = account(
            name,
            str(suite_path_label(name, suite)),
            items,
            answers[BASE],
            answers[adapter],
            ok[BASE],
            ok[adapter],
            samples=spec.eval.bootstrap_samples,
            seed=seed,
        )
    from registry.evaluate.lm_eval import run_tasks  # lm-eval tasks: the `lm-eval` extra

    for t in run_tasks(spec, model, tokenizer, adapter=adapter):
        results[t.name] = account(
            t.name,
            t.source,
            t.items,
            t.answers[BASE],
            t.answers[adapter],
            t.ok[BASE],
            t.ok[adapter],
            samples=spec.eval.bootstrap_samples,
            seed=seed,
        )
    return results


def suite_path_label(name: str, suite: Suite) -> str:
    """How the report names a suite's source: the shipped one by name, others by path."""
    return "registry (shipped)" if name == GENERAL else (suite.path or name)


def render_markdown(results: dict[str, SuiteResult], gate_rules: Sequence[Any]) -> list[str]:
    """The regression section of report.md: one table row per suite, then broken items.
    `gate_rules` are the verdict's checked rules; those on a suite are shown in its row."""
    from registry.evaluate.markdown import md, signed

    if not results:
        return []
    gated: dict[str, list[Any]] = {}
    for rule in gate_rules:
        if rule.metric.startswith("suite:"):
            gated.setdefault(rule.metric.removeprefix("suite:"), []).append(rule)
    lines = [
        "### Regression suites (what the base could do)",
        "",
        "| suite | n | base right | adapter right | kept | broken | fixed | Δ accuracy [95% CI] "
        "| McNemar p | gate rule |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    worst_first = sorted(results.values(), key=lambda r: (r.ci[0], -r.broken))
    for r in worst_first:
        rule_text = ", ".join(_rule_text(g) for g in gated.get(r.suite, [])) or "–"
        lines.append(
            f"| {md(r.suite)} | {r.n} | {r.base_correct} ({r.base_accuracy:.0%}) | "
            f"{r.adapter_correct} ({r.adapter_accuracy:.0%}) | {r.kept} | **{r.broken}** | "
            f"{r.fixed} | {signed(r.delta)} [{signed(r.ci[0])}, {signed(r.ci[1])}] | "
            f"{r.p:.3g} | {rule_text} |"
        )
    lines += [
        "",
        "broken = the base answered right and the adapter wrong; fixed = the reverse. The gate "
        "reads the interval's lower bound, so a small suite cannot pass by luck.",
    ]
    for r in worst_first:
        if not r.broken_items:
            continue
        shown = r.broken_items[:BROKEN_SHOWN]
        more = len(r.broken_items) - len(shown)
        lines += [
            "",
            f"#### Broken in {md(r.suite)}: {r.broken} item(s)"
            + (f", first {len(shown)} shown (all in report.json)" if more > 0 else ""),
            "",
            "| id | prompt | check | base answer | adapter answer |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {md(b['id'], 40)} | {md(b['prompt'])} | {md(b['check'], 60)} | "
            f"{md(b['base'])} | {md(b['adapter'])} |"
            for b in shown
        ]
    return lines


def _rule_text(rule: Any) -> str:
    mark = "✅" if rule.passed else "❌"
    if rule.rule == "max_drop_vs_base":
        return f"{mark} drop ≤ {rule.threshold:g}"
    return f"{mark} broken ≤ {rule.threshold:g}"
