"""Regression suites: the paired accounting on synthetic outcomes, the suite gate rules, and the
whole path on the tiny model (a zero-initialised adapter breaks nothing; a damaged one fails
the rule and its broken items are listed side by side in the report)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_evaluate import _damage, _peft

from registry.errors import InvalidInput
from registry.evaluate.gate import apply_gate
from registry.evaluate.regression import account, render_markdown
from registry.evaluate.run import evaluate
from registry.evaluate.stats import mcnemar
from registry.spec.schema import GateRule, load_spec, parse_spec
from registry.spec.suite import load_suite, suite_path


def write_suite(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def synthetic_suite(tmp_path: Path, n: int) -> list:
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"What is {i} plus 1?",
            "check": {"type": "numeric", "value": i + 1},
        }
        for i in range(n)
    ]
    return load_suite(write_suite(tmp_path / "s.jsonl", rows)).items


def outcomes(n: int, broken: int, fixed: int, both_wrong: int) -> tuple[list[bool], list[bool]]:
    """base/adapter correctness with exactly these counts (the rest kept), shuffled."""
    pairs = (
        [(True, False)] * broken
        + [(False, True)] * fixed
        + [(False, False)] * both_wrong
        + [(True, True)] * (n - broken - fixed - both_wrong)
    )
    random.Random(0).shuffle(pairs)
    return [b for b, _ in pairs], [a for _, a in pairs]


def test_account_counts_broken_fixed_kept_and_the_paired_statistics(tmp_path: Path) -> None:
    items = synthetic_suite(tmp_path, 200)
    base_ok, adapter_ok = outcomes(200, broken=30, fixed=6, both_wrong=40)
    answers = ["x"] * 200
    r = account("s", "s.jsonl", items, answers, answers, base_ok, adapter_ok)
    assert (r.broken, r.fixed, r.kept, r.n) == (30, 6, 124, 200)
    assert r.base_correct == 154 and r.adapter_correct == 130
    assert r.delta == pytest.approx((6 - 30) / 200)
    assert r.ci[0] < r.delta < r.ci[1] < 0  # a real drop: the interval excludes 0
    assert r.p == pytest.approx(
        mcnemar([float(x) for x in adapter_ok], [float(x) for x in base_ok])
    )
    assert len(r.broken_items) == 30
    assert {b["id"] for b in r.broken_items} == {
        items[i].id for i in range(200) if base_ok[i] and not adapter_ok[i]
    }
    assert r.outcomes["base"].count("1") == 154 and len(r.outcomes["adapter"]) == 200


def test_identical_answers_give_a_zero_width_interval_and_p_one(tmp_path: Path) -> None:
    items = synthetic_suite(tmp_path, 50)
    ok = [i % 3 != 0 for i in range(50)]
    r = account("s", "s", items, ["a"] * 50, ["a"] * 50, ok, ok)
    assert (r.broken, r.fixed, r.delta, r.ci, r.p) == (0, 0, 0.0, (0.0, 0.0), 1.0)


def verdict_for(result, **rule):
    return apply_gate(
        [GateRule(suite=result.suite, **rule)],
        metrics={},
        comparisons=[],
        regression={result.suite: result},
    )


def test_the_drop_rule_reads_the_interval_bound_so_small_suites_cannot_pass_by_luck(
    tmp_path,
) -> None:
    # The same 2% net drop: on 1000 items the interval is tight and rules out a 5-point drop;
    # on 50 items the data cannot rule it out, so the gate fails.
    big_items = synthetic_suite(tmp_path / "big", 1000)
    b, a = outcomes(1000, broken=40, fixed=20, both_wrong=200)
    big = account("general", "g", big_items, ["x"] * 1000, ["x"] * 1000, b, a)
    small_items = synthetic_suite(tmp_path / "small", 50)
    b, a = outcomes(50, broken=2, fixed=1, both_wrong=10)
    small = account("general", "g", small_items, ["x"] * 50, ["x"] * 50, b, a)
    assert big.delta == pytest.approx(small.delta)
    assert verdict_for(big, max_drop_vs_base=0.05).passed
    failed = verdict_for(small, max_drop_vs_base=0.05)
    assert not failed.passed and "over by" in failed.rules[0].message
    assert verdict_for(big, max_broken=40).passed and not verdict_for(big, max_broken=39).passed


def test_a_suite_rule_whose_suite_did_not_run_fails() -> None:
    verdict = apply_gate(
        [GateRule(suite="faq", max_drop_vs_base=0.05)], metrics={}, comparisons=[], regression={}
    )
    assert not verdict.passed and "was not run" in verdict.rules[0].message


@pytest.mark.parametrize(
    "gate, regression, message",
    [
        ("[{suite: faq, max_drop_vs_base: 0.05}]", "[general]", "not listed in eval.regression"),
        (
            "[{suite: general, metric: exact_match, max_drop_vs_base: 0.05}]",
            "[general]",
            "exactly one",
        ),
        ("[{suite: general, min: 0.5}]", "[general]", "cannot apply"),
        ("[{metric: exact_match, max_drop_vs_base: 0.05}]", "[general]", "cannot apply"),
        ("[{suite: general}]", "[general]", "no condition"),
        ("[]", "[../outside.jsonl]", "inside the repo"),
        ("[]", "[Not A Name]", "a name"),
    ],
)
def test_spec_refuses_malformed_suite_rules_with_the_field(gate, regression, message) -> None:
    text = (
        "name: toy\nversion: 1.0.0\nbase_model: builtin:tiny-llama\n"
        "data: {format: chat, train: datasets/toy/train.jsonl}\n"
        f"eval:\n  metrics: [exact_match]\n  regression: {regression}\n  gate: {gate}\n"
    )
    with pytest.raises(InvalidInput) as err:
        parse_spec(text, "adapters/toy/adapter.yaml")
    problem = err.value.problems[0]
    assert message in problem.message and problem.line is not None
    assert problem.field.startswith("eval")


def test_suite_references_resolve_to_shipped_shared_and_repo_paths(tmp_path: Path) -> None:
    assert suite_path("general", tmp_path).name == "general.jsonl"
    assert suite_path("general", tmp_path).is_file()  # shipped inside the package
    assert suite_path("faq", tmp_path) == tmp_path / "regression" / "faq.jsonl"
    assert suite_path("datasets/x/r.jsonl", tmp_path) == tmp_path / "datasets" / "x" / "r.jsonl"


# -- the tiny model, end to end --------------------------------------------------------------


def _self_consistent_suite(repo: Path, tiny_model, n: int = 24) -> Path:
    """A suite whose answer key is the base model's own greedy answers: the base is right on
    every item, so anything an adapter changes is broken, and nothing else is."""
    import re

    from registry.evaluate.generate import generate
    from registry.evaluate.regression import _prompt_ids
    from registry.spec.base_model import load_base_model, load_tokenizer

    rows = [
        {"id": f"m{i}", "prompt": f"Name animal number {i} and its sound.", "max_new_tokens": 6}
        for i in range(n)
    ]
    anything = {"type": "regex", "pattern": ".*"}
    draft = write_suite(
        repo / "regression" / "mine.jsonl", [{**r, "check": anything} for r in rows]
    )
    tokenizer = load_tokenizer(tiny_model)
    items = load_suite(draft).items
    gens = generate(
        load_base_model(tiny_model),
        tokenizer,
        [_prompt_ids(tokenizer, it) for it in items],
        max_new_tokens=6,
    )
    keyed = [
        {
            **r,
            "check": {
                "type": "regex",
                "pattern": re.escape(g.text.strip()) or "^$",
                "fullmatch": True,
            },
        }
        for r, g in zip(rows, gens, strict=True)
    ]
    return write_suite(repo / "regression" / "mine.jsonl", keyed)


@pytest.fixture
def regression_repo(toy_repo: Path, tiny_model) -> Path:
    _self_consistent_suite(toy_repo, tiny_model)
    return toy_repo


def _gated_spec(repo: Path):
    spec = load_spec(repo / "adapters" / "toy" / "adapter.yaml")
    return spec.with_overrides(
        **{
            "eval.metrics": ["exact_match"],
            "eval.regression": [{"suite": "mine"}],
            "eval.gate": [{"suite": "mine", "max_drop_vs_base": 0.05}],
            "eval.limit": 4,
        }
    )


def test_a_zero_initialised_adapter_breaks_nothing_and_passes(
    regression_repo: Path, tiny_model, tmp_path
) -> None:
    model = _peft(tiny_model)  # PEFT initialises LoRA B to zero: the adapter IS the base
    model.save_pretrained(tmp_path / "zero")
    report = evaluate(
        _gated_spec(regression_repo), tmp_path / "zero", out=tmp_path / "r0", progress=False
    )
    r = report.regression["mine"]
    assert (r.n, r.base_correct, r.broken, r.fixed, r.kept) == (24, 24, 0, 0, 24)
    assert report.passed, report.summary()
    data = json.loads((tmp_path / "r0" / "report.json").read_text())
    assert data["regression"]["mine"]["broken"] == 0 and data["regression"]["mine"]["ci"] == [
        0.0,
        0.0,
    ]


def test_a_damaged_adapter_fails_the_rule_and_the_report_shows_what_broke(
    regression_repo: Path, tiny_model, tmp_path
) -> None:
    model = _damage(_peft(tiny_model), scale=1.0)
    model.save_pretrained(tmp_path / "bad")
    report = evaluate(
        _gated_spec(regression_repo), tmp_path / "bad", out=tmp_path / "r1", progress=False
    )
    r = report.regression["mine"]
    assert r.broken >= 12 and r.fixed == 0  # the base is right on all, so only breaks happen
    assert not report.passed
    [rule] = [x for x in report.gate.rules if x.metric == "suite:mine"]
    assert not rule.passed and f"{r.broken} broken" in rule.message
    text = (tmp_path / "r1" / "report.md").read_text()
    assert "Regression suites" in text and f"Broken in mine: {r.broken} item(s)" in text
    first = r.broken_items[0]
    assert first["base"] != first["adapter"]
    data = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert [b["id"] for b in data["regression"]["mine"]["broken_items"]] == [
        b["id"] for b in r.broken_items
    ]
    assert render_markdown(report.regression, report.gate.rules)[0].startswith("### Regression")


def test_validate_names_a_missing_or_bad_suite_at_its_spec_line(toy_repo: Path) -> None:
    from registry.spec.validate import validate_spec

    spec_file = toy_repo / "adapters" / "toy" / "adapter.yaml"
    text = spec_file.read_text().replace("  regression: []", "  regression: [faq, general]", 1)
    spec_file.write_text(text)
    [problem] = validate_spec(spec_file, check_tokens=False).errors
    assert problem.field == "eval.regression.0" and "does not exist" in problem.message
    assert problem.line == next(
        i for i, line in enumerate(text.splitlines(), 1) if "regression:" in line
    )
    write_suite(
        toy_repo / "regression" / "faq.jsonl",
        [{"id": "a", "prompt": "p", "check": {"type": "regex", "pattern": "("}}],
    )
    [bad] = validate_spec(spec_file, check_tokens=False).errors
    assert bad.file.endswith("faq.jsonl") and bad.line == 1 and "compile" in bad.message
    (toy_repo / "regression" / "faq.jsonl").unlink()
    (toy_repo / "regression" / "faq.jsonl").symlink_to("/etc/passwd")
    [link] = validate_spec(spec_file, check_tokens=False).errors
    assert link.field == "eval.regression.0"
