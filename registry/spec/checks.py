"""Regression-suite checks: one pydantic model per kind of checkable answer, no model, no torch.

A check decides whether a generated answer is right (`passes(answer) -> bool`) and says in a
few words what it wants (`describe()`, for reports). The kinds form a discriminated union on
`type`; every model forbids unknown keys, so a typo in a suite file is an error, not a check
that silently accepts everything. Everything a check needs is validated when the suite loads
(patterns compile, JSON Schemas are valid and local), so checking an answer never raises.

Leniency rule: harmless formatting passes ("Paris." or "**Paris**" for `exact: Paris`), a
wrong answer never does. Where an answer is ambiguous (two choices, two refusal verdicts) it
fails: the gate counts items the base got right that the adapter breaks, and a check that
guesses in the adapter's favour would hide a regression.

Suite files come from pull requests, so patterns are untrusted: `regex` patterns run with a
time limit (registry.spec.answers.search), and JSON Schemas pass the same checks as the
spec's eval.json_schema (registry.spec.eval_checks: valid, only local `#...` references), so
validating an answer never reaches the network or the disk.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from registry.spec.suite import SuiteItem

from registry.spec.answers import (
    NO_JSON,
    compile_pattern,
    count_items,
    count_words,
    extract_number,
    fold,
    json_equal,
    normalise,
    parse_json_answer,
    phrase_pattern,
    refuses,
    search,
)


def _nonblank(value: str) -> str:
    if not normalise(value):
        raise ValueError("must be non-empty text")
    return value


Text = Annotated[str, Field(max_length=10_000), AfterValidator(_nonblank)]
Texts = Annotated[list[Text], Field(max_length=200)]


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def passes(self, answer: str) -> bool:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError


class Exact(_Check):
    """The whole answer, normalised, equals `answer` or one of `accept`."""

    type: Literal["exact"]
    answer: Text
    accept: Texts = []

    _ok: frozenset[str] = PrivateAttr(frozenset())

    def model_post_init(self, context: Any) -> None:
        self._ok = frozenset(normalise(a) for a in (self.answer, *self.accept))

    def passes(self, answer: str) -> bool:
        return normalise(answer) in self._ok

    def describe(self) -> str:
        return "exact: " + " | ".join((self.answer, *self.accept))


class Contains(_Check):
    """Case-insensitive phrases: every `all_of`, at least one `any_of`, none of `none_of`."""

    type: Literal["contains"]
    all_of: Texts = []
    any_of: Texts = []
    none_of: Texts = []
    whole_words: bool = True  # "no" must not match inside "not", nor "51" inside "151"

    @model_validator(mode="after")
    def _something(self) -> Contains:
        if not self.all_of and not self.any_of:
            raise ValueError("give all_of or any_of")
        return self

    def _has(self, text: str, phrase: str) -> bool:
        return search(phrase_pattern(phrase, self.whole_words), text) is not None

    def passes(self, answer: str) -> bool:
        text = fold(answer)
        return (
            all(self._has(text, p) for p in self.all_of)
            and (not self.any_of or any(self._has(text, p) for p in self.any_of))
            and not any(self._has(text, p) for p in self.none_of)
        )

    def describe(self) -> str:
        parts = [f"all of {self.all_of}"] if self.all_of else []
        parts += [f"any of {self.any_of}"] if self.any_of else []
        parts += [f"none of {self.none_of}"] if self.none_of else []
        return "contains: " + "; ".join(parts)


class Regex(_Check):
    """A `regex` pattern found in the answer (or matching all of it, stripped, with fullmatch)."""

    type: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=2000)
    fullmatch: bool = False
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_pattern(value)
        except (regex.error, OverflowError, RecursionError, ValueError) as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
        return value

    def passes(self, answer: str) -> bool:
        pattern = compile_pattern(self.pattern, regex.IGNORECASE if self.ignore_case else 0)
        text = answer.strip() if self.fullmatch else answer
        return search(pattern, text, full=self.fullmatch) is not None

    def describe(self) -> str:
        return f"regex ({'fullmatch' if self.fullmatch else 'search'}): {self.pattern}"


class Json(_Check):
    """The answer is JSON; optionally it `equals` a value, has `required_keys`, fits `schema`."""

    type: Literal["json"]
    equals: Any = None
    required_keys: list[str] = Field(default_factory=list, max_length=1000)
    json_schema: dict[str, Any] | None = Field(None, alias="schema")

    _validator: Any = PrivateAttr(None)

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        # the spec's eval.json_schema rules: valid for its draft, references stay in the document
        from registry.spec.eval_checks import json_schema_problem

        if reason := json_schema_problem(schema):
            raise ValueError(reason)
        return schema

    def model_post_init(self, context: Any) -> None:
        if self.json_schema is not None:
            import jsonschema

            cls = jsonschema.validators.validator_for(
                self.json_schema, default=jsonschema.Draft202012Validator
            )
            self._validator = cls(self.json_schema)

    def passes(self, answer: str) -> bool:
        value = parse_json_answer(answer)
        if value is NO_JSON:
            return False
        if self.required_keys and not (
            isinstance(value, dict) and all(k in value for k in self.required_keys)
        ):
            return False
        try:  # both recurse into the answer, which may nest deeply
            if "equals" in self.model_fields_set and not json_equal(value, self.equals):
                return False
            return self._validator is None or bool(self._validator.is_valid(value))
        except RecursionError:
            return False

    def describe(self) -> str:
        parts = []
        if "equals" in self.model_fields_set:
            parts.append("equals " + json.dumps(self.equals, ensure_ascii=False))
        if self.required_keys:
            parts.append("keys " + ", ".join(self.required_keys))
        if self.json_schema is not None:
            parts.append("matches its schema")
        return "json: " + ("; ".join(parts) or "valid")


class Numeric(_Check):
    """The number the answer gives equals `value` within `tolerance` (absolute) or `rel_tolerance`."""

    type: Literal["numeric"]
    value: float = Field(allow_inf_nan=False)
    tolerance: float = Field(0.0, ge=0, allow_inf_nan=False)
    rel_tolerance: float = Field(0.0, ge=0, allow_inf_nan=False)

    def passes(self, answer: str) -> bool:
        got = extract_number(answer)
        if got is None:
            return False
        slack = max(self.tolerance, self.rel_tolerance * abs(self.value), 1e-9)
        return math.isclose(got, self.value, rel_tol=0, abs_tol=slack)

    def describe(self) -> str:
        value = f"{self.value:g}"
        if self.tolerance or self.rel_tolerance:
            slack = f"{self.tolerance:g}" if self.tolerance else f"{self.rel_tolerance:.0%}"
            value += f" ± {slack}"
        return f"numeric: {value}"


# How an answer names a choice by its letter (upper case only: "a" is an English word).
_LETTER_PATTERNS = [
    regex.compile(r"^\W*\(?([A-Z])\)?\W*$"),  # "B", "(B)", "B."
    regex.compile(r"^\W*\(?([A-Z])[).:](?:\s|$)"),  # "B) Paris", "B. Paris"
    regex.compile(r"\(([A-Z])\)"),  # "... (B) ..."
    regex.compile(r"(?i:\b(?:answer|option|choice)\s*(?:is)?\s*:?\s*)\(?([A-Z])(?=[).,;:!?]|\s*$)"),
]


class Choice(_Check):
    """The answer picks exactly one of `choices`, and it is `answer` (by text or by letter)."""

    type: Literal["choice"]
    choices: list[Text] = Field(min_length=2, max_length=26)
    answer: Text
    letters: bool = True  # "B" picks the second choice; turn off for yes/no items

    @model_validator(mode="after")
    def _answer_is_a_choice(self) -> Choice:
        folded = [normalise(c) for c in self.choices]
        if len(set(folded)) != len(folded):
            raise ValueError("choices must differ (ignoring case and punctuation)")
        if normalise(self.answer) not in folded:
            raise ValueError("answer must be one of the choices")
        return self

    def picked(self, answer: str) -> set[int]:
        """Indices of the choices the answer names (a mention inside a longer one is not one)."""
        text = fold(answer)
        spans = {
            i: [m.span() for m in phrase_pattern(normalise(c)).finditer(text)]
            for i, c in enumerate(self.choices)
        }
        others = [(i, span) for i, found in spans.items() for span in found]

        def inside_another(i: int, s: int, e: int) -> bool:  # "York" within "New York"
            return any(j != i and a <= s and e <= b and (a, b) != (s, e) for j, (a, b) in others)

        picks = {i for i, found in spans.items() if any(not inside_another(i, *sp) for sp in found)}
        if self.letters:
            for pattern in _LETTER_PATTERNS:
                for m in pattern.finditer(answer.strip()):
                    index = ord(m.group(1).upper()) - ord("A")
                    if 0 <= index < len(self.choices):
                        picks.add(index)
        return picks

    def passes(self, answer: str) -> bool:
        right = [normalise(c) for c in self.choices].index(normalise(self.answer))
        return self.picked(answer) == {right}

    def describe(self) -> str:
        return f"choice: {self.answer} (of {', '.join(self.choices)})"


class Refusal(_Check):
    """`expect: refuse` (default): the answer declines; `expect: comply`: it does not."""

    type: Literal["refusal"]
    expect: Literal["refuse", "comply"] = "refuse"
    phrases: list[Text] | None = Field(None, min_length=1, max_length=200)

    def passes(self, answer: str) -> bool:
        if self.expect == "refuse":
            return refuses(answer, self.phrases)
        return bool(answer.strip()) and not refuses(answer, self.phrases)

    def describe(self) -> str:
        return "refusal: " + ("refuses" if self.expect == "refuse" else "complies (no refusal)")


def _bounds_text(lo: int | None, hi: int | None) -> str:
    if lo == hi:
        return str(lo)
    if hi is None:
        return f">= {lo}"
    return f"<= {hi}" if lo is None else f"{lo}-{hi}"


class _Bounded(_Check):
    count: int | None = Field(None, ge=0)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> _Bounded:
        if self.count is not None and (self.min is not None or self.max is not None):
            raise ValueError("give count, or min and/or max, not both")
        if self.count is None and self.min is None and self.max is None:
            raise ValueError("give count, min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self

    def _within(self, n: int) -> bool:
        if self.count is not None:
            return n == self.count
        return (self.min is None or n >= self.min) and (self.max is None or n <= self.max)

    def _bounds_text(self) -> str:
        if self.count is not None:
            return str(self.count)
        return _bounds_text(self.min, self.max)


class WordCount(_Bounded):
    """The answer has `count` words (or between `min` and `max`)."""

    type: Literal["word_count"]

    def passes(self, answer: str) -> bool:
        return self._within(count_words(answer))

    def describe(self) -> str:
        return f"word_count: {self._bounds_text()}"


class ListItems(_Bounded):
    """The answer is a list of `count` items (or between `min` and `max`); see count_items."""

    type: Literal["list_items"]

    def passes(self, answer: str) -> bool:
        return self._within(count_items(answer))

    def describe(self) -> str:
        return f"list_items: {self._bounds_text()}"


class All(_Check):
    """Every one of `checks` passes (e.g. one word AND it is "blue"); no `all` inside `all`."""

    type: Literal["all"]
    checks: list[Annotated[_Simple, Field(discriminator="type")]] = Field(
        min_length=1, max_length=16
    )

    def passes(self, answer: str) -> bool:
        return all(c.passes(answer) for c in self.checks)

    def describe(self) -> str:
        return " + ".join(c.describe() for c in self.checks)


_Simple = Exact | Contains | Regex | Json | Numeric | Choice | Refusal | WordCount | ListItems
All.model_rebuild()
Check = Annotated[_Simple | All, Field(discriminator="type")]
_MODELS = (Exact, Contains, Regex, Json, Numeric, Choice, Refusal, WordCount, ListItems, All)
KINDS: dict[str, type[_Check]] = {
    m.model_fields["type"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in _MODELS
}


def check(item: SuiteItem | _Check, answer: str) -> bool:
    """Whether `answer` passes the item's check."""
    return (item if isinstance(item, _Check) else item.check).passes(answer)


def describe(item: SuiteItem | _Check, limit: int = 100) -> str:
    """A short description of what the item's check wants, for reports."""
    text = (item if isinstance(item, _Check) else item.check).describe()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
