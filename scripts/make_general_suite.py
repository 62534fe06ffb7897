#!/usr/bin/env python3
"""Write the general regression suite shipped in the package: registry/resources/regression/general.jsonl.

A recipe, not a download: the items are written here for this project (no benchmark is copied),
the computable ones (arithmetic, conversions, days and months) generated from seeded
`random.Random`, the rest hand-written in general_suite_data.py (for the first 322 items) and
general_suite_items.py (for the 190 added), beside this file. Standard library only; the same bytes every run,
so the committed file can be checked against this script.

    python scripts/make_general_suite.py [--out FILE]

The suite must be useful for a weak base (SmolLM2-135M-Instruct): the gate counts items the base
answers right that an adapter breaks, so the mix leans toward what a small chat model gets
right (docs/regression.md has the measured accuracy per category), with short answers (a small
`max_new_tokens`). Every item carries a `reference` answer that
passes its check (the loader insists; tests/spec/test_checks.py also checks that an obviously
wrong answer fails). Categories are the first tag: arithmetic, conversion, calendar, geography,
science, knowledge, instruction, format, yes_no, choice, multilingual, refusal, helpful.

The first 322 items are the suite as first measured; the 190 added later (a power analysis
asked for ~470-500) come after all of them, so those 322 lines never change: measured results,
caches and `limit: N` smoke runs keep meaning the same. No prompt may be one the adapters' replay data asks
(scripts/make_replay.py, scripts/data/general_replay.jsonl): main() asserts it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from random import Random

import general_suite_items as items_more  # scripts/, beside this file
import make_replay
from general_suite_data import (  # scripts/, beside this file
    CAPITAL_SPELLINGS,
    CAPITAL_TRAPS,
    CAPITALS,
    CHOICES,
    FORMATS,
    HARMFUL,
    HARMLESS,
    INSTRUCTIONS,
    KNOWLEDGE,
    SCIENCE,
    TRANSLATIONS,
    YES_NO,
    contains,
    numeric,
)

SEED = 20250315
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "registry" / "resources" / "regression" / "general.jsonl"
REPLAY = ROOT / "scripts" / "data" / "general_replay.jsonl"
HEADER = {
    "suite": "general",
    "description": "General abilities a chat model should keep after fine-tuning: arithmetic, "
    "facts, unit conversions, instruction following, formats, multiple choice, translations, "
    "refusing harmful requests and not refusing harmless ones.",
    "max_new_tokens": 24,
    # A weak base rambles without it ("To solve this problem, ...") and runs out of tokens.
    "system": "You are a concise assistant. Reply with the answer only, in as few words as "
    "possible.",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip


def item(category: str, n: int, prompt: str, check: dict, reference: str, **extra) -> dict:
    record = {"id": f"{category}-{n:03d}", "prompt": prompt, "check": check}
    record.update(extra)
    record["tags"] = [category, *record.pop("tags", [])]
    record["reference"] = reference
    return record


# -- generated: arithmetic, conversions, calendar ---------------------------------------------


ARITHMETIC = [  # (op, prompt, answer, a range, b range, how many, how many more)
    ("add", "What is {a} plus {b}?", lambda a, b: a + b, (1, 20), (1, 20), 6, 3),
    ("add", "What is {a} + {b}?", lambda a, b: a + b, (10, 50), (1, 9), 4, 2),
    ("sub", "What is {a} minus {b}?", lambda a, b: a - b, (10, 30), (1, 9), 4, 2),
    ("mul", "What is {a} times {b}?", lambda a, b: a * b, (2, 9), (2, 9), 8, 4),
    ("mul", "What is {a} times {b}?", lambda a, b: a * b, (11, 30), (2, 5), 12, 6),
    ("div", "What is {p} divided by {b}?", None, (2, 10), (2, 9), 6, 3),
]


def arithmetic(rng: Random, more: bool = False, seen: set[str] | None = None, n0: int = 0):
    """The first items (`more` False), or the added ones: "how many more" of each template,
    none of them a prompt in `seen` (the first items'), numbered from `n0`."""
    out, seen = [], set(seen or ())
    for op, text, fn, (alo, ahi), (blo, bhi), first, extra in ARITHMETIC:
        made, count = 0, extra if more else first
        while made < count:
            a, b = rng.randint(alo, ahi), rng.randint(blo, bhi)
            if op == "div":
                prompt, value = text.format(p=a * b, b=b), a
            else:
                prompt, value = text.format(a=a, b=b), fn(a, b)
            if prompt in seen:
                continue
            seen.add(prompt)
            made += 1
            out.append(
                item("arithmetic", n0 + len(out), prompt, numeric(value), f"{value}", tags=[op])
            )
    return out


CONVERSIONS = [
    # (question, factor, n range, unit of the answer)
    ("How many centimeters are in {n} meters?", 100, (2, 9), "centimeters"),
    ("How many millimeters are in {n} centimeters?", 10, (2, 9), "millimeters"),
    ("How many meters are in {n} kilometers?", 1000, (2, 9), "meters"),
    ("How many grams are in {n} kilograms?", 1000, (2, 9), "grams"),
    ("How many minutes are in {n} hours?", 60, (2, 9), "minutes"),
    ("How many seconds are in {n} minutes?", 60, (2, 9), "seconds"),
    ("How many hours are in {n} days?", 24, (2, 7), "hours"),
    ("How many days are in {n} weeks?", 7, (2, 9), "days"),
    ("How many months are in {n} years?", 12, (2, 9), "months"),
    ("How many inches are in {n} feet?", 12, (2, 9), "inches"),
    ("How many milliliters are in {n} liters?", 1000, (2, 9), "milliliters"),
]


def conversions(rng: Random) -> list[dict]:
    out = []
    for text, factor, (lo, hi), unit in CONVERSIONS:
        n = rng.randint(lo, hi)
        value = n * factor
        out.append(
            item("conversion", len(out), text.format(n=n), numeric(value), f"{value} {unit}")
        )
    return out


def more_conversions(rng: Random, how_many: int, seen: set[str], n0: int) -> list[dict]:
    """`how_many` unit pairs again (drawn by `rng`), each with an amount not asked before."""
    out = []
    for k in sorted(rng.sample(range(len(CONVERSIONS)), how_many)):
        text, factor, (lo, hi), unit = CONVERSIONS[k]
        while (prompt := text.format(n=(n := rng.randint(lo, hi)))) in seen:
            pass
        value = n * factor
        out.append(item("conversion", n0 + len(out), prompt, numeric(value), f"{value} {unit}"))
    return out


def calendar() -> list[dict]:
    out = []
    for i, day in enumerate(DAYS):
        nxt = DAYS[(i + 1) % 7]
        others = tuple(d for d in DAYS if d not in (day, nxt))
        out.append(
            item(
                "calendar",
                len(out),
                f"What day comes after {day}?",
                contains(nxt, none_of=others),
                f"{nxt}.",
            )
        )
    for i, month in list(enumerate(MONTHS))[::2]:  # every other month keeps the share small
        nxt = MONTHS[(i + 1) % 12]
        others = tuple(m for m in MONTHS if m not in (month, nxt))
        out.append(
            item(
                "calendar",
                len(out),
                f"Which month comes after {month}?",
                contains(nxt, none_of=others),
                f"{nxt} comes after {month}.",
            )
        )
    for prompt, value in [
        ("How many days are in a week?", 7),
        ("How many months are in a year?", 12),
        ("How many hours are in a day?", 24),
        ("How many minutes are in an hour?", 60),
        ("How many seconds are in a minute?", 60),
        ("How many days are in a leap year?", 366),
        ("How many seasons are in a year?", 4),
        ("How many days are in the month of January?", 31),
    ]:
        out.append(item("calendar", len(out), prompt, numeric(value), f"{value}"))
    for prompt, answer in [
        ("What is the first month of the year?", "January"),
        ("What is the last month of the year?", "December"),
    ]:
        others = tuple(m for m in MONTHS if m != answer)
        out.append(item("calendar", len(out), prompt, contains(answer, none_of=others), answer))
    return out


def more_calendar(n0: int) -> list[dict]:
    """The day before every other day, the month after December, five counts, an ordinal."""
    out = []
    for i in range(1, 7, 2):
        day, before = DAYS[i], DAYS[i - 1]
        others = tuple(d for d in DAYS if d not in (day, before))
        out.append(
            item(
                "calendar",
                n0 + len(out),
                f"What day comes before {day}?",
                contains(before, none_of=others),
                f"{before}.",
            )
        )
    others = tuple(MONTHS[1:-1])
    out.append(
        item(
            "calendar",
            n0 + len(out),
            "Which month comes after December?",
            contains("January", none_of=others),
            "January comes after December.",
        )
    )
    for prompt, check in [
        ("How many days are in a year that is not a leap year?", numeric(365)),
        ("How many days are in the month of April?", numeric(30)),
        ("How many weeks are in a year?", numeric(52, tolerance=0.2)),
        ("How many years are in a decade?", numeric(10)),
        ("How many years are in a century?", numeric(100)),
    ]:
        reference = f"{check['value']}"
        out.append(item("calendar", n0 + len(out), prompt, check, reference))
    others = tuple(m for m in MONTHS if m != "March")
    out.append(
        item(
            "calendar",
            n0 + len(out),
            "What is the third month of the year?",
            contains("March", none_of=others),
            "March",
        )
    )
    return out


def as_check(spec) -> dict:
    """A check, or general_suite_items' shorthand for one: a number (or value, tolerance) is
    `numeric`, a dict without "type" holds the keys of `contains`."""
    if isinstance(spec, (int, float)):
        return numeric(spec)
    if isinstance(spec, tuple):
        return numeric(spec[0], tolerance=spec[1])
    if "type" not in spec:
        return contains(*spec["any_of"], none_of=tuple(spec.get("none_of", ())))
    return spec


def capitals(rows, spellings: dict, traps: dict, n0: int = 0) -> list[dict]:
    out = []
    for country, city in rows:
        alternatives = (city, *spellings.get(city, ()))
        out.append(
            item(
                "geography",
                n0 + len(out),
                f"What is the capital of {country}?",
                contains(*alternatives, none_of=traps.get(country, ())),
                f"The capital of {country} is {city}.",
                tags=["capital"],
            )
        )
    return out


def facts(category: str, rows, n0: int = 0, **extra) -> list[dict]:
    return [
        item(category, n0 + n, prompt, as_check(check), reference, **extra)
        for n, (prompt, check, reference) in enumerate(rows)
    ]


def instructions(rows, n0: int = 0) -> list[dict]:
    out = []
    for n, (prompt, words, reference) in enumerate(rows, n0):
        if n % 2:  # the same constraint, stated after the question
            prompt = (
                prompt.removeprefix("Answer in one word: ").capitalize() + " Answer in one word."
            )
        check = {"type": "all", "checks": [{"type": "word_count", "count": 1}, contains(*words)]}
        out.append(item("instruction", n, prompt, check, reference))
    return out


def formats(rows, n0: int = 0) -> list[dict]:
    out = []
    for n, (prompt, check, reference) in enumerate(rows, n0):
        tokens = 48 if check["type"] in ("json", "list_items", "all", "word_count") else None
        extra = {"max_new_tokens": tokens} if tokens else {}
        out.append(item("format", n, prompt, check, reference, **extra))
    return out


def yes_no(rows, n0: int = 0) -> list[dict]:
    out = []
    for n, (prompt, answer) in enumerate(rows, n0):
        check = {"type": "choice", "choices": ["yes", "no"], "answer": answer, "letters": False}
        out.append(item("yes_no", n, prompt, check, f"{answer.capitalize()}."))
    return out


def choices(rows, n0: int = 0) -> list[dict]:
    out = []
    for n, (question, options, answer) in enumerate(rows, n0):
        # the right option moves through A-D (a weak model tends to answer "A")
        options = [o for o in options if o != answer]
        options.insert(n % 4, answer)
        lines = "\n".join(f"{chr(65 + i)}) {o}" for i, o in enumerate(options))
        prompt = f"{question}\n{lines}\nAnswer with the letter of the correct option."
        check = {"type": "choice", "choices": options, "answer": answer}
        letter = chr(65 + options.index(answer))
        out.append(item("choice", n, prompt, check, f"{letter}) {answer}"))
    return out


def translations(rows, n0: int = 0) -> list[dict]:
    out = []
    for n, (language, word, accepted) in enumerate(rows, n0):
        kind = "phrase" if " " in word else "word"
        prompt = f'What is the {language} {kind} for "{word}"?'
        out.append(
            item(
                "multilingual",
                n,
                prompt,
                contains(*accepted),
                f'In {language}, "{word}" is "{accepted[0]}".',
                tags=[language.lower()],
            )
        )
    return out


def requests(harmful, harmless, n0: tuple[int, int] = (0, 0)) -> list[dict]:
    out = []
    for n, prompt in enumerate(harmful, n0[0]):
        check = {"type": "refusal"}
        out.append(
            item("refusal", n, prompt, check, "I'm sorry, but I can't help with that.",
                 max_new_tokens=32)
        )  # fmt: skip
    for n, prompt in enumerate(harmless, n0[1]):
        check = {"type": "refusal", "expect": "comply"}
        out.append(item("helpful", n, prompt, check, "Here is how: ...", max_new_tokens=32))
    return out


def hand_written() -> list[dict]:
    return [
        *capitals(CAPITALS, CAPITAL_SPELLINGS, CAPITAL_TRAPS),
        *facts("science", SCIENCE),
        *facts("knowledge", KNOWLEDGE),
        *instructions(INSTRUCTIONS),
        *formats(FORMATS),
        *yes_no(YES_NO),
        *choices(CHOICES),
        *translations(TRANSLATIONS),
        *requests(HARMFUL, HARMLESS),
    ]


def added(first: list[dict]) -> list[dict]:
    """The items added after the first 322, numbered on from them: the generated ones from
    streams of their own (more draws from Random(SEED) would shift every later item), one per
    category so that changing one leaves the other alone, none drawing a prompt of the first
    items or of the replay data (which asks 10 of the conversions); the rest from
    general_suite_items."""
    seen = {i["prompt"] for i in first} | set(replay_prompts())
    count = lambda category: sum(i["tags"][0] == category for i in first)  # noqa: E731
    more, n = items_more, count("geography")
    geography = capitals(more.CAPITALS, more.CAPITAL_SPELLINGS, more.CAPITAL_TRAPS, n)
    geography += facts("geography", more.PLACES, n + len(geography), tags=["place"])
    return [
        *arithmetic(Random(SEED + 1), more=True, seen=seen, n0=count("arithmetic")),
        *more_conversions(Random(SEED + 2), 8, seen, count("conversion")),
        *more_calendar(count("calendar")),
        *geography,
        *facts("science", more.SCIENCE, count("science")),
        *facts("knowledge", more.KNOWLEDGE, count("knowledge")),
        *instructions(more.INSTRUCTIONS, count("instruction")),
        *formats(more.FORMATS, count("format")),
        *yes_no(more.YES_NO, count("yes_no")),
        *choices(more.CHOICES, count("choice")),
        *translations(more.TRANSLATIONS, count("multilingual")),
        *requests(more.HARMFUL, more.HARMLESS, (count("refusal"), count("helpful"))),
    ]


def build() -> list[dict]:
    rng = Random(SEED)
    first = [*arithmetic(rng), *conversions(rng), *calendar(), *hand_written()]
    return first + added(first)


def replay_prompts() -> list[str]:
    """The adapters' replay prompts: those in its data, and every one its recipe asks."""
    rows = (json.loads(line) for line in REPLAY.read_text(encoding="utf-8").splitlines() if line)
    asked = [m["content"] for r in rows for m in r["messages"] if m["role"] == "user"]
    return [*asked, *make_replay.prompts()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    items = build()
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "duplicate ids"
    prompts = [i["prompt"].strip().lower() for i in items]
    assert len(prompts) == len(set(prompts)), "duplicate prompts"
    # The adapters' replay data must not train on what the gate measures (make_replay.py checks
    # the same from its side, but only when it is run, with the model).
    replay = {p.strip().lower() for p in replay_prompts()}
    overlap = [p for p in prompts if p in replay]
    assert not overlap, f"suite prompts must not be replay prompts: {overlap}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(HEADER, ensure_ascii=False)]
    lines += [json.dumps(i, ensure_ascii=False) for i in items]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(items)} items to {args.out}")


if __name__ == "__main__":
    main()
