"""Per-item metrics against hand-computed values."""

from __future__ import annotations

import time

import pytest

from registry.errors import InvalidInput
from registry.evaluate.metrics import (
    contains,
    exact_match,
    flatten_json,
    json_field_f1,
    json_schema_valid,
    json_valid,
    normalise_answer,
    regex_match,
    rouge_l,
    schema_validator,
    text_metrics,
)
from registry.spec.answers import compile_pattern
from registry.spec.schema import EvalConfig


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("woof", "woof", 1.0),
        ("  Woof.\n", "woof", 1.0),  # case, whitespace, trailing punctuation
        ('"meow"', "meow", 1.0),  # surrounding quotes
        ("big   red\tdog", "big red dog", 1.0),
        ("woof woof", "woof", 0.0),
        ("wof", "woof", 0.0),
        ("", "woof", 0.0),
        ('{"b": 2, "a": 1}', '{"a":1,"b":2}', 1.0),  # JSON: key order and spacing ignored
        ('{"a": 1, "b": 3}', '{"a":1,"b":2}', 0.0),
        ('{"a": "X"}', '{"a": "x"}', 0.0),  # JSON values compared exactly, not casefolded
    ],
)
def test_exact_match(output: str, reference: str, expected: float) -> None:
    assert exact_match(output, reference) == expected


def test_normalise_answer_keeps_inner_punctuation() -> None:
    assert normalise_answer("  3.14!  ") == "3.14"
    assert normalise_answer("ＡＢＣ") == "abc"  # NFKC folds full-width letters


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"a": 1}', 1.0),
        ("  [1, 2]\n", 1.0),
        ("42", 1.0),
        ('```json\n{"a": 1}\n```', 0.0),  # strict: a code fence would break json.loads
        ('{"a": 1', 0.0),
        ("", 0.0),
    ],
)
def test_json_valid(output: str, expected: float) -> None:
    assert json_valid(output) == expected


def test_json_schema() -> None:
    schema = {
        "type": "object",
        "required": ["priority"],
        "properties": {"priority": {"enum": ["low", "high"]}},
    }
    validator = schema_validator(schema)
    assert json_schema_valid('{"priority": "low"}', validator) == 1.0
    assert json_schema_valid('{"priority": "urgent"}', validator) == 0.0
    assert json_schema_valid("{}", validator) == 0.0
    assert json_schema_valid("not json", validator) == 0.0


def test_broken_schema_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="eval.json_schema"):
        schema_validator({"type": "no-such-type"})


def test_flatten_json_paths() -> None:
    assert flatten_json({"a": {"b": [1, "x"]}, "c": [], "d": None}) == {
        ("a.b[0]", "1"),
        ("a.b[1]", '"x"'),
        ("c", "[]"),
        ("d", "null"),
    }


def test_json_field_f1_hand_computed() -> None:
    reference = '{"a": 1, "b": {"c": 2, "d": [1, 2]}}'  # a=1, b.c=2, b.d[0]=1, b.d[1]=2
    output = '{"a": 1, "b": {"c": 3, "d": [1]}}'  # a=1, b.c=3, b.d[0]=1 -> 2 hits
    # precision 2/3, recall 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert json_field_f1(output, reference) == pytest.approx(4 / 7)
    assert json_field_f1(reference, reference) == 1.0
    assert json_field_f1('{"x": 1}', reference) == 0.0
    assert json_field_f1("garbage", reference) == 0.0
    with pytest.raises(ValueError):
        json_field_f1("{}", "not json")


def test_contains_and_regex() -> None:
    assert contains("The dog says WOOF!", "woof") == 1.0
    assert contains("The dog barks", "woof") == 0.0
    assert regex_match("id: 42", compile_pattern(r"\d+")) == 1.0  # search semantics
    assert regex_match("id: 42", compile_pattern(r"^\d+$")) == 0.0  # anchors demand a full match


def test_a_catastrophic_eval_regex_scores_zero_within_its_time_limit() -> None:
    # (a+)+$ on "aaaa...b" backtracks 2^n ways: with `re` this line would not return in a
    # lifetime; the spec's pattern is untrusted, so the match is cut off and counts as a miss.
    started = time.monotonic()
    assert regex_match("a" * 40 + "b", compile_pattern(r"(a+)+$")) == 0.0
    assert time.monotonic() - started < 30  # the limit is 0.25 s; 30 s only rules out a hang


def test_rouge_l_hand_computed() -> None:
    # LCS("the cat sat on the mat", "the cat on the mat") = 5 tokens: P = 5/5, R = 5/6
    assert rouge_l("the cat on the mat", "the cat sat on the mat") == pytest.approx(10 / 11)
    assert rouge_l("dog", "the cat") == 0.0
    assert rouge_l("", "") == 1.0


def test_rouge_l_scores_non_ascii_text() -> None:
    # rouge-score's default tokenizer drops non-ASCII letters and would score this 0.
    assert rouge_l("привет мир", "привет мир") == 1.0
    assert rouge_l("привет", "привет мир") == pytest.approx(2 * 0.5 / 1.5)


def test_text_metrics_bind_spec_settings() -> None:
    config = EvalConfig(
        metrics=["exact_match", "contains", "regex", "loss", "stops"],
        contains="ticket",
        regex=r"^\{",
    )
    bound = {m.name: m.score for m in text_metrics(config.metrics, config)}
    assert set(bound) == {"exact_match", "contains", "regex"}  # loss/stops come from the model
    assert bound["contains"]("a Ticket here", "reference ignored") == 1.0
    assert bound["regex"]("{...", "x") == 1.0
    assert bound["regex"]("x{", "x") == 0.0
