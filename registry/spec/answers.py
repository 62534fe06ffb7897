"""Reading generated answers: the text helpers behind the regression checks.

Pure functions of the answer text, shared by the regression checks (registry.spec.checks):
what counts as the same text, the number an answer gives, its JSON, its words and list items,
and whether it refuses.

Every pattern built from suite text runs with a time limit (`search`): suites come from pull
requests, and a catastrophic pattern must cost a failed match, not a stuck CI job. The
`regex` package (a transformers dependency) provides the limit.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import regex

REGEX_TIMEOUT_S = 0.25  # per match: an answer is at most a few thousand characters
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_WRAPPERS = "\"'`*_ \t\n"
TRAILING = ".!?;:,\u3002"


def fold(text: str) -> str:
    """NFKC, straight quotes, casefold, single spaces: the form every text comparison uses."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    return " ".join(text.split())


def normalise(text: str) -> str:
    """`fold`, then strip surrounding quotes/Markdown emphasis and trailing punctuation."""
    text, previous = fold(text), None
    while text != previous:
        previous = text
        text = text.strip(_WRAPPERS).rstrip(TRAILING)
    return text


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str, flags: int = 0) -> Any:
    return regex.compile(pattern, flags)


def search(pattern: Any, text: str, full: bool = False) -> Any:
    """A time-bounded match; a pattern that runs past the limit counts as no match."""
    try:
        return (pattern.fullmatch if full else pattern.search)(text, timeout=REGEX_TIMEOUT_S)
    except TimeoutError:
        return None


def phrase_pattern(phrase: str, whole_words: bool = True) -> Any:
    """A pattern for a folded phrase: any run of spaces between words, word edges respected."""
    body = r"\s+".join(regex.escape(w) for w in fold(phrase).split())
    if whole_words and regex.match(r"\w", phrase.strip()[:1] or " "):
        body = r"(?<!\w)" + body
    if whole_words and regex.search(r"\w$", phrase.strip()):
        body += r"(?!\w)"
    return compile_pattern(body)


NO_JSON = object()


def parse_json_answer(answer: str) -> Any:
    """The answer as JSON: all of it, or one ```json fenced block that is all of it."""
    text = answer.strip()
    fence = regex.fullmatch(r"```(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", text, regex.DOTALL)
    try:
        return json.loads(fence.group(1) if fence else text)
    except (ValueError, RecursionError):
        return NO_JSON


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0 but true != 1 (Python's == would say True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
_TEENS = "fifteen sixteen seventeen eighteen nineteen twenty"
_WORD_NUMBERS = dict(zip(f"{_UNITS} {_TEENS}".split(), range(21), strict=True))
_WORD_NUMBERS |= {
    w: 10 * i for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)
}
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_ONES = "one|two|three|four|five|six|seven|eight|nine"
_NUMBER = regex.compile(
    r"(?P<neg>(?<![\w-])[-\u2212])?(?<![\w.]|\d,)"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<frac>\d+))?(?:\s*/\s*(?P<den>\d+))?(?![\d.,]\d)"
    rf"|(?<![\w-])(?P<word>(?:{_TENS})[- ](?:{_ONES})|{'|'.join(_WORD_NUMBERS)})(?![\w-])",
    regex.IGNORECASE,
)
# A number right after one of these is the one the answer gives ("17 times 3 is 51").
_MARKER = regex.compile(
    r"(?:\bis|\bequals|=|\bmakes|\bgives|\banswer:|\bresult:|\btotal:)"
    r"\s*(?:about|approximately|roughly|exactly|around|~|\$)?\s*$",
    regex.IGNORECASE,
)


def extract_number(answer: str) -> float | None:
    """The number an answer gives: the last one right after "is"/"="/..., else the last one.

    Understands "51", "51.0", "1,024", "-3", "3/4", "51%" (as 51) and number words up to
    ninety-nine ("twenty-one": only as the whole answer or after a marker, since "one" is also a
    pronoun). None when the answer has no number.
    """
    found: list[tuple[float, bool]] = []
    for m in _NUMBER.finditer(answer[:20_000]):
        if m["word"]:
            first, _, second = m["word"].lower().replace("-", " ").partition(" ")
            value = float(_WORD_NUMBERS[first] + (_WORD_NUMBERS[second] if second else 0))
        else:
            value = float(m["int"].replace(",", "") + ("." + m["frac"] if m["frac"] else ""))
            if m["den"]:
                if int(m["den"]) == 0:
                    continue
                value /= int(m["den"])
            value = -value if m["neg"] else value
        marked = _MARKER.search(answer[max(0, m.start() - 40) : m.start()]) is not None
        if m["word"] and not marked and normalise(answer) != fold(m["word"]):
            continue  # "no one knows" gives no number; "one." and "it is one" do
        found.append((value, marked))
    if not found:
        return None
    marked_values = [v for v, marked in found if marked]
    return marked_values[-1] if marked_values else found[-1][0]


_WORD = regex.compile(r"[\w'\u2019-]+")


def count_words(answer: str) -> int:
    """Words are runs of letters/digits (with ' and -): "Paris." is one, "don't" is one."""
    return sum(1 for w in _WORD.findall(answer) if regex.search(r"\w", w))


_MARKED_LINE = regex.compile(r"^(?:[-*\u2022+]|\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+\S")
_INLINE_NUMBERED = regex.compile(r"(?:^|\s)\d{1,2}[.)]\s+\S")


def count_items(answer: str) -> int:
    """List items: bulleted/numbered lines; else non-heading lines; else comma/'and' parts."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        return 0
    if len(lines) == 1 and len(_INLINE_NUMBERED.findall(lines[0])) >= 2:
        return len(_INLINE_NUMBERED.findall(lines[0]))  # "1. red 2. blue 3. green"
    marked = [line for line in lines if _MARKED_LINE.match(line)]
    if marked:
        return len(marked)
    if len(lines) > 1:
        return sum(1 for line in lines if not line.endswith(":"))
    line = lines[0]
    body = line.rsplit(":", 1)[-1].rstrip(TRAILING)
    parts = regex.split(r"\s*(?:[,;]|\band\b|\bor\b)\s*", body)
    return sum(1 for part in parts if regex.search(r"\w", part))


REFUSAL_PHRASES = (
    "i can't", "i cannot", "i can not", "i won't", "i will not", "i'm sorry", "i am sorry",
    "i apologize", "i apologise", "i'm not able", "i am not able", "i'm unable", "i am unable",
    "unable to help", "unable to assist", "unable to provide", "can't help", "can't assist",
    "can't provide", "cannot help", "cannot assist", "cannot provide", "i must decline",
    "i'm not going to", "i am not going to", "i don't feel comfortable", "i'm not comfortable",
    "not appropriate", "i strongly advise against", "i do not condone", "i don't condone",
    "is illegal", "are illegal", "against the law", "not ethical", "unethical",
)  # fmt: skip


def refuses(answer: str, phrases: Sequence[str] | None = None) -> bool:
    """Whether the answer declines: it holds one of `phrases` (default REFUSAL_PHRASES)."""
    text = fold(answer)
    return any(search(phrase_pattern(p), text) is not None for p in phrases or REFUSAL_PHRASES)
