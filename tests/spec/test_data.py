"""Dataset reading, checks and the answer-only label mask."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import toy_records, write_jsonl

from registry.spec.data import (
    IGNORE_INDEX,
    Example,
    duplicate_problems,
    leakage_problems,
    normalise,
    parse_examples,
    render_prompt,
    show_example,
    tokenize_example,
)


def lines(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_every_malformed_line_is_reported_with_line_and_field(tmp_path: Path):
    path = lines(
        tmp_path / "d.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                ]
            },
            "{not json",
            {"messages": [{"role": "user", "content": "hi"}]},
            {
                "messages": [
                    {"role": "robot", "content": "x"},
                    {"role": "assistant", "content": "y"},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "  "},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": "q2"},
                    {"role": "assistant", "content": "a"},
                ],
                "extra": 1,
            },
        ],
    )
    examples, problems = parse_examples(path, "chat")
    assert len(examples) == 1
    by_line = {p.line: p for p in problems}
    assert "invalid JSON" in by_line[2].message
    assert "last message must be the assistant" in by_line[3].message
    assert by_line[4].field == "messages[0].role"
    assert "whitespace-only" in by_line[5].message
    assert by_line[6].field == "extra"
    assert all(p.file == str(path) for p in problems)


def test_completion_and_alpaca_formats(tmp_path: Path):
    comp = lines(tmp_path / "c.jsonl", [{"prompt": "2+2=", "completion": "4"}, {"prompt": "x"}])
    examples, problems = parse_examples(comp, "completion")
    assert examples[0].prompt == "2+2=" and examples[0].answer == "4"
    assert problems[0].field == "completion" and problems[0].line == 2
    alp = lines(
        tmp_path / "a.jsonl", [{"instruction": "Translate", "input": "chat", "output": "cat"}]
    )
    (ex,), problems = parse_examples(alp, "alpaca", system_prompt="Be terse.")
    assert not problems
    assert ex.messages[0] == {"role": "system", "content": "Be terse."}
    assert ex.messages[1]["content"] == "Translate\n\nchat"


def test_system_prompt_is_added_unless_the_record_has_one(tmp_path: Path):
    path = lines(
        tmp_path / "d.jsonl",
        [
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            {
                "messages": [
                    {"role": "system", "content": "own"},
                    {"role": "user", "content": "c"},
                    {"role": "assistant", "content": "d"},
                ]
            },
        ],
    )
    first, second = parse_examples(path, "chat", system_prompt="spec prompt")[0]
    assert first.messages[0]["content"] == "spec prompt"
    assert second.messages[0]["content"] == "own"


def test_not_utf8_and_missing_file(tmp_path: Path):
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"prompt": "a", "completion": "b"}\n\xff\xfe\n')
    _, problems = parse_examples(bad, "completion")
    assert problems[0].line == 2 and "UTF-8" in problems[0].message
    _, problems = parse_examples(tmp_path / "nope.jsonl", "completion")
    assert "not found" in problems[0].message and "dvc pull" in problems[0].hint


def test_duplicates_are_warnings_and_near_duplicates_are_found():
    a = Example("a", 1, "Moo", prompt="The cow says")
    b = Example("b", 2, "Moo", prompt="The cow says")
    c = Example("c", 3, "moo!", prompt="the  COW says?")
    problems = duplicate_problems([a, b, c], "f.jsonl")
    assert [p.line for p in problems] == [2, 3]
    assert all(p.severity == "warning" for p in problems)
    assert "exact duplicate of line 1" in problems[0].message
    assert "near duplicate of line 1" in problems[1].message


def test_leakage_between_train_and_eval_is_an_error():
    train = [Example("t", 4, "x", prompt="Café order #12")]
    evals = [Example("e", 7, "y", prompt="cafe ORDER #12"), Example("f", 8, "y", prompt="other")]
    (problem,) = leakage_problems(train, evals, "eval.jsonl")
    assert problem.line == 7 and problem.severity == "error" and "train line 4" in problem.message
    assert normalise("Café, ORDER!") == "cafe order"


def test_labels_cover_answer_and_eos_only(tmp_path: Path, tiny_tokenizer):
    write_jsonl(tmp_path / "t.jsonl", toy_records(3, seed=0))
    examples, _ = parse_examples(tmp_path / "t.jsonl", "chat", "Be brief.")
    ex = examples[0]
    tok = tokenize_example(tiny_tokenizer, ex)
    trained = [
        t for t, label in zip(tok.input_ids, tok.labels, strict=True) if label != IGNORE_INDEX
    ]
    assert tiny_tokenizer.decode(trained) == ex.answer + tiny_tokenizer.eos_token
    prompt_len = len(
        tiny_tokenizer(render_prompt(tiny_tokenizer, ex), add_special_tokens=False)["input_ids"]
    )
    assert tok.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert tok.labels[prompt_len:] == tok.input_ids[prompt_len:]
    # truncation keeps the alignment
    short = tokenize_example(tiny_tokenizer, ex, max_seq_len=10)
    assert len(short.input_ids) == len(short.labels) == 10


def test_show_example_marks_exactly_the_trained_text(tiny_tokenizer):
    ex = Example("x", 1, "woof", messages=({"role": "user", "content": "dog"},))
    shown = show_example(tiny_tokenizer, ex, 128)
    assert "⟦woof<|im_end|>⟧" in shown
    body = shown.split("\n", 1)[1]
    assert body.count("⟦") == 1
    assert "dog" in body.split("⟦")[0]
