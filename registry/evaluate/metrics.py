"""Per-item metrics: pure functions of (output, reference) -> score, no model, no torch.

Every metric returns a float per item so contenders can be compared item by item (paired
statistics). Binary metrics return exactly 0.0 or 1.0, which the statistics use to pick
McNemar's test. All are "higher is better" except `loss` (see LOWER_IS_BETTER).

Choices worth knowing:
- exact_match normalises case, Unicode form, whitespace and trailing punctuation, because a
  model that answers "Woof." for "woof" is right; when both texts are JSON it compares the parsed
  values instead, so key order and spacing do not count.
- json_valid is strict: the whole output (stripped) must parse. A Markdown code fence around the
  JSON fails, because a program calling `json.loads` on the answer would fail too.
- rouge_l tokenises on Unicode word characters (rouge-score's default drops everything that is
  not ASCII a-z0-9, which scores any non-English text as 0).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from registry.errors import InvalidInput
from registry.spec.answers import compile_pattern, search

BINARY_METRICS = frozenset(
    {"exact_match", "json_valid", "json_schema", "contains", "regex", "stops"}
)
CONTINUOUS_METRICS = frozenset({"json_field_f1", "rouge_l", "loss"})
LOWER_IS_BETTER = frozenset({"loss", "general_drift"})
# Metrics computed from the model rather than from the output text (see generate.py).
MODEL_METRICS = frozenset({"loss", "stops"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


# -- normalisation -----------------------------------------------------------------------------

_TRAILING_PUNCT = ".!?;:,"


def normalise_answer(text: str) -> str:
    """NFKC, casefold, collapse whitespace, strip surrounding quotes and trailing punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    text = text.rstrip(_TRAILING_PUNCT).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


_MISSING = object()


def parse_json(text: str) -> Any:
    """The parsed value, or _MISSING when the (stripped) text is not JSON."""
    try:
        return json.loads(text.strip())
    except (json.JSONDecodeError, RecursionError, ValueError):
        return _MISSING


# -- the metrics -------------------------------------------------------------------------------


def exact_match(output: str, reference: str) -> float:
    ref_json = parse_json(reference)
    if ref_json is not _MISSING and isinstance(ref_json, (dict, list)):
        out_json = parse_json(output)
        if out_json is not _MISSING:
            return float(out_json == ref_json)
    return float(normalise_answer(output) == normalise_answer(reference))


def json_valid(output: str) -> float:
    return float(parse_json(output) is not _MISSING)


def json_schema_valid(output: str, validator: Any) -> float:
    """1.0 when the output parses and the jsonschema `validator` accepts it."""
    value = parse_json(output)
    if value is _MISSING:
        return 0.0
    return float(validator.is_valid(value))


def flatten_json(value: Any, prefix: str = "") -> set[tuple[str, str]]:
    """{(key path, canonical leaf)}: `{"a": {"b": [1, 2]}}` -> {("a.b[0]", "1"), ("a.b[1]", "2")}.

    Empty containers are leaves of their own, so `{"tags": []}` still counts as a field.
    """
    if isinstance(value, dict) and value:
        pairs: set[tuple[str, str]] = set()
        for key, child in value.items():
            pairs |= flatten_json(child, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, list) and value:
        pairs = set()
        for i, child in enumerate(value):
            pairs |= flatten_json(child, f"{prefix}[{i}]")
        return pairs
    return {(prefix, json.dumps(value, sort_keys=True, ensure_ascii=False))}


def json_field_f1(output: str, reference: str) -> float:
    """F1 of (key path, value) pairs: partial credit for getting some fields right.

    An output that does not parse scores 0. The reference must be JSON (evaluate checks this up
    front and names the offending eval line).
    """
    ref = parse_json(reference)
    if ref is _MISSING:
        raise ValueError("json_field_f1: the reference is not JSON")
    out = parse_json(output)
    if out is _MISSING:
        return 0.0
    ref_pairs, out_pairs = flatten_json(ref), flatten_json(out)
    hits = len(ref_pairs & out_pairs)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(out_pairs), hits / len(ref_pairs)
    return 2 * precision * recall / (precision + recall)


def contains(output: str, needle: str) -> float:
    """The needle (normalised) occurs in the output (normalised)."""
    return float(normalise_answer(needle) in normalise_answer(output))


def regex_match(output: str, pattern: Any) -> float:
    """`re.search` semantics: anchor the pattern (^...$) in the spec to demand a full match.

    The pattern comes from a pull request's spec, so it runs with the regression checks' time
    limit (registry.spec.answers.search): a catastrophic pattern scores 0, it cannot hang CI."""
    return float(search(pattern, output) is not None)


class _WordTokenizer:
    """Unicode-aware tokenizer for rouge-score (its default keeps only ASCII a-z0-9)."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())


def rouge_l(output: str, reference: str) -> float:
    tokenizer = _WordTokenizer()
    if not tokenizer.tokenize(reference) and not tokenizer.tokenize(output):
        return 1.0  # both empty (or punctuation only): identical as far as words go
    return float(_rouge_scorer().score(reference, output)["rougeL"].fmeasure)


# -- binding metrics to a spec -----------------------------------------------------------------


@dataclass(frozen=True)
class TextMetric:
    name: str
    score: Callable[[str, str], float]  # (output, reference) -> score


def text_metrics(metrics: list[str], eval_config: Any) -> list[TextMetric]:
    """The spec's text metrics bound to their settings (schema, regex, needle), validated once.

    `loss` and `stops` are not text metrics: they come from the model (generate.py).
    """
    bound: list[TextMetric] = []
    for name in metrics:
        if name in MODEL_METRICS:
            continue
        if name == "exact_match":
            bound.append(TextMetric(name, exact_match))
        elif name == "json_valid":
            bound.append(TextMetric(name, lambda out, ref: json_valid(out)))
        elif name == "json_schema":
            validator = schema_validator(eval_config.json_schema)
            bound.append(TextMetric(name, lambda out, ref, v=validator: json_schema_valid(out, v)))
        elif name == "json_field_f1":
            bound.append(TextMetric(name, json_field_f1))
        elif name == "contains":
            needle = eval_config.contains
            if needle is None:
                bound.append(TextMetric(name, contains))
            else:
                bound.append(TextMetric(name, lambda out, ref, n=needle: contains(out, n)))
        elif name == "regex":
            pattern = compile_pattern(eval_config.regex)
            bound.append(TextMetric(name, lambda out, ref, p=pattern: regex_match(out, p)))
        elif name == "rouge_l":
            bound.append(TextMetric(name, rouge_l))
        else:
            raise InvalidInput(f"unknown metric {name!r}", file="eval.metrics")
    return bound


def schema_validator(schema: dict[str, Any] | None) -> Any:
    """A jsonschema validator for the spec's eval.json_schema; a broken schema is bad input."""
    import jsonschema

    if schema is None:
        raise InvalidInput("metric json_schema needs eval.json_schema", file="eval.json_schema")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInput(
            f"not a valid JSON Schema: {exc.message}", file="eval.json_schema"
        ) from None
    return cls(schema)
