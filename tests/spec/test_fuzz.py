"""Fuzzing: arbitrary specs and dataset lines give InvalidInput with a location, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidInput
from registry.spec.data import parse_examples
from registry.spec.schema import parse_spec

pytestmark = pytest.mark.reliability

VALID = {
    "name": "fuzz",
    "version": "1.0.0",
    "base_model": "builtin:tiny-llama",
    "data": {"format": "chat", "train": "datasets/fuzz/train.jsonl"},
    "training": {"max_steps": 3},
    "eval": {"metrics": ["exact_match"], "gate": [{"metric": "exact_match", "min": 0.1}]},
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "name",
        "version",
        "base_model",
        "method",
        "lora",
        "data",
        "training",
        "eval",
        "publish",
        "quantization",
        "description",
        "extra",
    ]
)


def _spec_text(mutations: dict) -> str:
    spec = json.loads(json.dumps(VALID))
    for dotted, value in mutations.items():
        node = spec
        *parents, leaf = dotted.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = value
    return yaml.safe_dump(spec, allow_unicode=True)


mutation_keys = st.one_of(
    keys,
    st.sampled_from(
        [
            "lora.r",
            "lora.alpha",
            "lora.target_modules",
            "data.format",
            "data.train",
            "data.eval",
            "training.epochs",
            "training.learning_rate",
            "training.batch_size",
            "eval.metrics",
            "eval.gate",
            "eval.json_schema",
            "eval.regex",
            "publish.repo",
            "quantization.bits",
        ]
    ),
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(mutation_keys, values, max_size=4))
def test_mutated_specs_never_crash(mutations):
    text = _spec_text(mutations)
    try:
        parse_spec(text, "adapters/fuzz/adapter.yaml")
    except InvalidInput as exc:
        assert exc.problems and all(p.file == "adapters/fuzz/adapter.yaml" for p in exc.problems)
        assert all(p.line is None or 1 <= p.line <= text.count("\n") + 1 for p in exc.problems)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_as_spec_never_crashes(text):
    try:
        parse_spec(text, "x.yaml")
    except InvalidInput as exc:
        assert exc.problems


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.one_of(st.text(max_size=60), values.map(json.dumps)), max_size=8),
    st.sampled_from(["chat", "completion", "alpaca"]),
)
def test_arbitrary_dataset_lines_never_crash(tmp_path_factory, lines, fmt):
    path = Path(tmp_path_factory.mktemp("fuzz")) / "d.jsonl"
    path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n", encoding="utf-8")
    examples, problems = parse_examples(path, fmt)
    n_lines = len(lines)
    for p in problems:
        assert p.file == str(path)
        assert p.line is None or 1 <= p.line <= max(n_lines, 1)
    assert len(examples) <= n_lines
