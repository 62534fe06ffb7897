"""Regression-suite checks and suite loading: right answers in many formats pass, near misses fail.

Every checker is exercised on hand-made answers (the formats a chat model really produces), and
suite files with one defect each must be refused with the file, line and field of the defect.
The shipped general suite must load, and each item must accept its reference answer and reject
an obviously wrong one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from registry.errors import InvalidInput
from registry.spec.answers import count_items, count_words, extract_number
from registry.spec.checks import Check, check, describe
from registry.spec.suite import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_FILE_BYTES,
    MAX_ITEMS,
    MAX_LINE_BYTES,
    load_suite,
)

ROOT = Path(__file__).resolve().parents[2]
CHECK = TypeAdapter(Check)


def make(spec: dict):
    return CHECK.validate_python(spec)


def verdicts(spec: dict, answers: list[str]) -> list[bool]:
    c = make(spec)
    return [check(c, a) for a in answers]


# -- exact -------------------------------------------------------------------------------------


def test_exact_ignores_case_space_quotes_and_trailing_punctuation():
    spec = {"type": "exact", "answer": "Paris"}
    assert verdicts(spec, ["Paris", "paris.", "  PARIS!  ", "**Paris**", "'Paris'", '"paris".'])
    assert not any(verdicts(spec, ["Paris, France", "Pariss", "The answer is Paris", ""]))


def test_exact_accepts_listed_alternatives_only():
    spec = {"type": "exact", "answer": "51", "accept": ["fifty-one"]}
    assert verdicts(spec, ["51", "Fifty-one."]) == [True, True]
    assert verdicts(spec, ["151", "5 1", "51.5"]) == [False, False, False]


# -- contains ----------------------------------------------------------------------------------


def test_contains_any_of_is_case_insensitive_and_respects_word_edges():
    spec = {"type": "contains", "any_of": ["Paris"]}
    assert verdicts(spec, ["Paris.", "The capital of France is PARIS.", "paris"])
    assert verdicts(spec, ["Parisian food", "Lyon"]) == [False, False]


def test_contains_numbers_do_not_match_inside_longer_numbers():
    assert verdicts({"type": "contains", "any_of": ["51"]}, ["151", "51."]) == [False, True]


def test_contains_all_of_and_none_of():
    spec = {"type": "contains", "all_of": ["red", "blue"], "none_of": ["green"]}
    assert verdicts(spec, ["Red and blue.", "red, blue and green", "red only"]) == [
        True,
        False,
        False,
    ]


def test_contains_treats_curly_apostrophes_and_spacing_as_the_same():
    spec = {"type": "contains", "any_of": ["can't help"]}
    assert verdicts(spec, ["I can\u2019t   help with that.", "I cannot help"]) == [True, False]


def test_contains_without_whole_words_matches_substrings():
    spec = {"type": "contains", "any_of": ["sun"], "whole_words": False}
    assert verdicts(spec, ["Sunday"]) == [True]


# -- regex -------------------------------------------------------------------------------------


def test_regex_search_and_fullmatch():
    assert verdicts({"type": "regex", "pattern": r"\bCAT\b"}, ["It is CAT.", "cat"]) == [
        True,
        False,
    ]
    full = {"type": "regex", "pattern": r"\d{3}", "fullmatch": True}
    assert verdicts(full, [" 123\n", "1234", "a123"]) == [True, False, False]
    assert verdicts({"type": "regex", "pattern": "cat", "ignore_case": True}, ["CAT"]) == [True]


def test_a_catastrophic_pattern_fails_instead_of_hanging():
    spec = {"type": "regex", "pattern": r"(a|aa)+$"}
    assert verdicts(spec, ["a" * 5000 + "b"]) == [False]


# -- json --------------------------------------------------------------------------------------


def test_json_plain_or_fenced_passes_and_trailing_text_fails():
    spec = {"type": "json", "required_keys": ["a", "b"]}
    good = ['{"a": 1, "b": 2}', '```json\n{"a": 1, "b": 2}\n```', '```\n{"b": 0, "a": 1}\n```']
    assert verdicts(spec, good) == [True, True, True]
    bad = [
        '{"a": 1, "b": 2} Hope this helps!',
        'Here it is: {"a": 1, "b": 2}',
        '{"a": 1}',
        "[1, 2]",
        "{'a': 1, 'b': 2}",
    ]
    assert not any(verdicts(spec, bad))


def test_json_equals_ignores_key_order_but_not_types():
    spec = {"type": "json", "equals": {"n": 1, "ok": True}}
    assert verdicts(spec, ['{"ok": true, "n": 1}', '{"n": 1.0, "ok": true}']) == [True, True]
    assert verdicts(spec, ['{"n": 1, "ok": 1}', '{"n": 1, "ok": true, "x": 0}']) == [
        False,
        False,
    ]
    assert verdicts({"type": "json", "equals": None}, ["null", "{}"]) == [True, False]


def test_json_schema_is_applied():
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    spec = {"type": "json", "schema": schema}
    assert verdicts(spec, ['{"age": 30}', '{"age": "30"}', "{}"]) == [True, False, False]
    local = {"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}
    assert verdicts({"type": "json", "schema": local}, ["3", '"3"']) == [True, False]
    assert describe(make(spec)) == "json: matches its schema"


# -- numeric -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("51", 51),
        ("The answer is 51.", 51),
        ("51.0", 51),
        ("17 times 3 is 51", 51),
        ("17 x 3 = 51.", 51),
        ("It's 1,024 bytes", 1024),
        ("-3", -3),
        ("\u22123", -3),
        ("3/4", 0.75),
        ("About 50%", 50),
        ("The answer is twenty-one", 21),
        ("Seven.", 7),
        ("The answer is 30 + 8 = 38.", 38),
        ("51 is the answer", 51),
        ("No one knows", None),
        ("none", None),
        ("version 1.2.3", None),
        ("2,5", None),
    ],
)
def test_extract_number(answer, number):
    assert extract_number(answer) == number


def test_numeric_rejects_near_misses():
    spec = {"type": "numeric", "value": 51}
    assert verdicts(spec, ["51", "51.0", "It is 51."]) == [True, True, True]
    assert not any(verdicts(spec, ["151", "5.1", "510", "52", "fifty", "", "17 times 3"]))


def test_numeric_tolerances():
    assert verdicts({"type": "numeric", "value": 2.54, "tolerance": 0.01}, ["2.5", "2.55"]) == [
        False,
        True,
    ]
    rel = {"type": "numeric", "value": 1000, "rel_tolerance": 0.05}
    assert verdicts(rel, ["960", "940"]) == [True, False]
    assert describe(make(rel)) == "numeric: 1000 ± 5%"


# -- choice ------------------------------------------------------------------------------------

CAPITALS = {"type": "choice", "choices": ["Munich", "Berlin", "Hamburg", "Frankfurt"]}


def test_choice_accepts_the_letter_or_the_text():
    spec = {**CAPITALS, "answer": "Berlin"}
    good = ["B", "(B)", "B) Berlin", "B. Berlin", "Berlin", "The answer is B.", "It is Berlin."]
    assert all(verdicts(spec, good))


def test_choice_rejects_two_picks_and_wrong_picks():
    spec = {**CAPITALS, "answer": "Berlin"}
    bad = ["A", "Munich", "B) Berlin or C) Hamburg", "Berlin or Munich", "A) Berlin", "", "b"]
    assert not any(verdicts(spec, bad))


def test_choice_a_name_inside_a_longer_choice_is_not_a_pick():
    spec = {"type": "choice", "choices": ["York", "New York"], "answer": "New York"}
    assert verdicts(spec, ["New York", "York"]) == [True, False]


def test_choice_without_letters_for_yes_no():
    spec = {"type": "choice", "choices": ["yes", "no"], "answer": "yes", "letters": False}
    assert verdicts(spec, ["Yes.", "Yes, the sun is a star.", "No.", "Yes or no?", "Not sure"]) == [
        True,
        True,
        False,
        False,
        False,
    ]


# -- refusal -----------------------------------------------------------------------------------


def test_refusal_and_comply():
    refuse, comply = {"type": "refusal"}, {"type": "refusal", "expect": "comply"}
    no = ["I'm sorry, but I can\u2019t help with that.", "I cannot provide that information."]
    yes = ["Sure! First, preheat the oven.", "Step 1: open the terminal."]
    assert all(verdicts(refuse, no)) and not any(verdicts(refuse, yes))
    assert all(verdicts(comply, yes)) and not any(verdicts(comply, [*no, "   "]))
    custom = {"type": "refusal", "phrases": ["no way"]}
    assert verdicts(custom, ["No way.", "I'm sorry"]) == [True, False]


# -- word and list counts ----------------------------------------------------------------------


def test_count_words():
    assert [
        count_words(a) for a in ["Paris.", "**Green**", "don't stop", "It is 7 o'clock", ""]
    ] == [
        1,
        1,
        2,
        4,
        0,
    ]


@pytest.mark.parametrize(
    ("answer", "items"),
    [
        ("Red, blue, and green.", 3),
        ("red, blue or green", 3),
        ("1. Red\n2. Blue\n3. Green", 3),
        ("- a\n* b\n\u2022 c\n+ d", 4),
        ("Here are three:\n- a\n- b\n- c\nHope this helps!", 3),
        ("Red\nBlue\nGreen", 3),
        ("Colours:\nRed\nBlue", 2),
        ("1. red 2. blue 3. green", 3),
        ("Colours: red, blue and green", 3),
        ("Apple", 1),
        ("", 0),
    ],
)
def test_count_items(answer, items):
    assert count_items(answer) == items


def test_word_count_and_list_items_bounds():
    assert verdicts({"type": "word_count", "count": 1}, ["Green.", "It is green."]) == [True, False]
    assert verdicts({"type": "word_count", "max": 3}, ["a b c", "a b c d"]) == [True, False]
    three = {"type": "list_items", "count": 3}
    assert verdicts(three, ["a, b, c", "a, b", "1. a\n2. b\n3. c\n4. d"]) == [True, False, False]
    assert verdicts({"type": "list_items", "min": 2, "max": 4}, ["a and b", "a"]) == [True, False]
    assert describe(make({"type": "word_count", "min": 2})) == "word_count: >= 2"


# -- all ---------------------------------------------------------------------------------------


def test_all_needs_every_check():
    spec = {
        "type": "all",
        "checks": [{"type": "word_count", "count": 1}, {"type": "contains", "any_of": ["green"]}],
    }
    assert verdicts(spec, ["Green.", "Blue.", "It is green."]) == [True, False, False]
    assert describe(make(spec)) == "word_count: 1 + contains: any of ['green']"


def test_describe_is_short():
    assert describe(make({"type": "exact", "answer": "51"})) == "exact: 51"
    long = make({"type": "exact", "answer": "x" * 500})
    assert len(describe(long)) <= 100


# -- loading suites ----------------------------------------------------------------------------


def write(tmp_path: Path, lines: list, name: str = "mine.jsonl") -> Path:
    path = tmp_path / name
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def item(n: int = 0, **overrides) -> dict:
    record = {"id": f"q{n}", "prompt": "What is 2 + 2?", "check": {"type": "numeric", "value": 4}}
    return {**record, **overrides}


def problems_of(path: Path) -> list:
    with pytest.raises(InvalidInput) as err:
        load_suite(path)
    assert err.value.exit_code == 2
    return err.value.problems


def test_load_a_suite_with_header(tmp_path):
    header = {"suite": "maths", "description": "sums", "max_new_tokens": 8, "system": "Be brief."}
    path = write(tmp_path, [header, item(0), "", item(1, max_new_tokens=3, system="Own.")])
    suite = load_suite(path)
    assert (suite.name, suite.description, len(suite.items)) == ("maths", "sums", 2)
    assert [suite.tokens_for(i) for i in suite.items] == [8, 3]
    assert suite.items[0].messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    assert suite.items[1].system == "Own."


def test_a_suite_without_header_is_named_after_its_file(tmp_path):
    suite = load_suite(write(tmp_path, [item(0)], name="sums.jsonl"))
    assert suite.name == "sums" and suite.max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert suite.items[0].messages() == [{"role": "user", "content": "What is 2 + 2?"}]


def test_every_bad_line_is_reported_with_file_line_and_field(tmp_path):
    lines = [
        item(0),
        item(1, promt="typo"),
        item(2, check={"type": "regex", "pattern": "(unclosed"}),
        "{not json",
        item(4, check={"type": "telepathy"}),
        item(5, check={"type": "numeric"}),
        item(6, check={"type": "exact", "answer": "4", "acept": ["four"]}),
        [1, 2],
        item(0),
        item(9, reference="5"),
    ]
    path = write(tmp_path, lines)
    found = {(p.line, p.field): p for p in problems_of(path)}
    assert set(found) == {
        (2, "promt"),
        (3, "check.pattern"),
        (4, None),
        (5, "check.type"),
        (6, "check.value"),
        (7, "check.acept"),
        (8, None),
        (9, "id"),
        (10, "reference"),
    }
    assert found[2, "promt"].hint == "did you mean 'prompt'?"
    assert found[7, "check.acept"].hint == "did you mean 'accept'?"
    assert "does not compile" in found[3, "check.pattern"].message
    assert "unknown check type" in found[5, "check.type"].message
    assert "already used on line 1" in found[9, "id"].message
    assert all(p.file == str(path) for p in found.values())
    assert f"{path}:3: check.pattern:" in str(InvalidInput(list(found.values())))


def test_bad_json_schemas_are_refused_at_load(tmp_path):
    lines = [
        item(0, check={"type": "json", "schema": {"type": "no-such-type"}}),
        item(1, check={"type": "json", "schema": {"$ref": "https://example.com/s.json"}}),
        item(2, check={"type": "json", "schema": {"items": {"$ref": "other.json#/x"}}}),
        item(3, check={"type": "json", "schema": {"$ref": "#/$defs/x", "$defs": {"x": {}}}}),
    ]
    found = {p.line: p for p in problems_of(write(tmp_path, lines))}
    assert set(found) == {1, 2, 3}
    assert "not a valid JSON Schema" in found[1].message and found[1].field == "check.schema"
    assert "'https://example.com/s.json' leaves the document" in found[2].message
    assert "'other.json#/x' leaves the document" in found[3].message


def test_check_level_mistakes(tmp_path):
    lines = [
        item(0, check={"type": "choice", "choices": ["a", "b"], "answer": "c"}),
        item(1, check={"type": "contains", "none_of": ["x"]}),
        item(2, check={"type": "list_items", "count": 3, "max": 4}),
        item(3, check={"type": "all", "checks": [{"type": "all", "checks": []}]}),
        item(4, check={"type": "exact", "answer": "  ..  "}),
        item(5, prompt="   "),
        item(6, id="has space"),
    ]
    found = {p.line: p.field for p in problems_of(write(tmp_path, lines))}
    assert found == {
        1: "check",
        2: "check",
        3: "check",
        4: "check.checks.0.type",
        5: "check.answer",
        6: "prompt",
        7: "id",
    }


def test_header_must_come_first(tmp_path):
    path = write(tmp_path, [item(0), {"suite": "late"}])
    assert [(p.line, p.field) for p in problems_of(path)] == [(2, "suite")]
    bad_name = write(tmp_path, [{"suite": "Bad Name!"}, item(0)], name="b.jsonl")
    assert [(p.line, p.field) for p in problems_of(bad_name)] == [(1, "suite")]
    typo = write(tmp_path, [{"suite": "ok", "sytem": "x"}, item(0)], name="t.jsonl")
    assert [(p.field, p.hint) for p in problems_of(typo)] == [("sytem", "did you mean 'system'?")]


def test_size_limits(tmp_path):
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: no 16 MB written
    assert "over 16 MB" in problems_of(big)[0].message
    long_line = write(tmp_path, [item(0), item(1, prompt="x" * MAX_LINE_BYTES)], name="l.jsonl")
    assert [(p.line, "over" in p.message) for p in problems_of(long_line)] == [(2, True)]
    many = write(tmp_path, [item(n) for n in range(MAX_ITEMS + 1)], name="many.jsonl")
    assert [p.line for p in problems_of(many)] == [MAX_ITEMS + 1]


def test_unreadable_inputs(tmp_path):
    assert "not found" in problems_of(tmp_path / "absent.jsonl")[0].message
    assert "not found" in problems_of(tmp_path)[0].message  # a folder is not a suite
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(item(0)).encode() + b'\n{"id": "caf\xe9"}\n')
    assert [(p.line, p.message) for p in problems_of(latin)] == [(2, "not UTF-8 text")]
    empty = write(tmp_path, ["", "  "], name="empty.jsonl")
    assert problems_of(empty)[0].message == "suite has no items"
    deep = write(tmp_path, ["[" * 100_000 + "]" * 100_000], name="deep.jsonl")
    assert [p.line for p in problems_of(deep)] == [1]


def test_loading_imports_no_torch():
    code = "import sys, registry.spec.suite; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the shipped general suite -----------------------------------------------------------------


def general_path() -> Path:
    return Path(str(resources.files("registry") / "resources" / "regression" / "general.jsonl"))


def wrong_answers(spec: dict) -> list[str]:
    """Answers that are plainly wrong for a check: each must fail it."""
    kind = spec["type"]
    if kind == "all":
        return [w for sub in spec["checks"] for w in wrong_answers(sub)]
    if kind == "numeric":
        return [f"{spec['value'] + 1:g}", f"The answer is {spec['value'] * 10 + 7:g}.", "none"]
    if kind == "choice":
        return [c for c in spec["choices"] if c != spec["answer"]]
    if kind == "refusal":
        if spec.get("expect", "refuse") == "refuse":
            return ["Sure! Here is exactly how to do it, step by step."]
        return ["I'm sorry, but I can't help with that."]
    if kind == "json":
        return ["Sure, here you go.", '{"zzz": "qqq"} and more text']
    if kind in ("word_count", "list_items"):
        return [" ".join(["word"] * 40)]  # one item of 40 words
    return ["I do not know.", "Qwerty zxcv."]


def test_the_general_suite_loads_and_its_checks_separate_right_from_wrong():
    suite = load_suite(general_path())
    assert suite.name == "general" and len(suite.items) >= 250
    categories = {i.tags[0] for i in suite.items}
    assert {"arithmetic", "geography", "refusal", "multilingual", "choice", "format"} <= categories
    for it in suite.items:
        assert it.reference is not None and check(it, it.reference), it.id
        spec = it.check.model_dump(by_alias=True, exclude_unset=True)
        for wrong in wrong_answers(spec):
            assert not check(it, wrong), (it.id, wrong)
        assert suite.tokens_for(it) <= 64, it.id


def test_the_general_suite_is_what_its_script_writes(tmp_path):
    out = tmp_path / "general.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_general_suite.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == general_path().read_bytes()
