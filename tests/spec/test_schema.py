"""The spec schema: defaults, cross-field rules, and errors that point at file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TOY_SPEC

from registry.errors import InvalidInput
from registry.spec.schema import Spec, json_schema, load_spec, parse_spec

MINIMAL = """\
name: mini
version: 0.1.0
base_model: builtin:tiny-llama
data: {format: chat, train: datasets/mini/train.jsonl}
"""


def problems_of(text: str) -> list:
    with pytest.raises(InvalidInput) as info:
        parse_spec(text, "adapters/x/adapter.yaml")
    return info.value.problems


def test_minimal_spec_gets_documented_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.method == "lora"
    assert spec.lora.r == 8 and spec.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert spec.training.epochs == 1.0 and spec.training.max_steps is None
    assert spec.quantization is None


def test_unknown_key_is_an_error_with_line_field_and_suggestion():
    text = MINIMAL + "lora: {r: 8, alhpa: 16}\n"
    (problem,) = problems_of(text)
    assert problem.line == 5
    assert problem.field == "lora.alhpa"
    assert "unknown key" in problem.message
    assert "alpha" in problem.hint


def test_all_errors_reported_at_once():
    text = MINIMAL.replace("0.1.0", "1.0") + "method: lorax\ntraining: {batch_size: 0}\n"
    fields = {p.field for p in problems_of(text)}
    assert {"version", "method", "training.batch_size"} <= fields


def test_duplicate_keys_are_errors():
    (problem,) = problems_of(MINIMAL + "version: 0.2.0\n")
    assert "duplicate key 'version'" in problem.message and problem.line == 5


def test_yaml_syntax_error_names_line():
    (problem,) = problems_of(MINIMAL + "lora: {r: 8\n")
    assert "YAML syntax" in problem.message and problem.line is not None


def test_yaml_is_safe_loaded():
    text = MINIMAL + "description: !!python/object/apply:os.system ['echo pwned']\n"
    (problem,) = problems_of(text)
    assert "tag" in problem.message and "not allowed" in problem.message
    assert problem.line == MINIMAL.count("\n") + 1


@pytest.mark.parametrize(
    "ref",
    [
        "HuggingFaceTB/SmolLM2-135M-Instruct",  # not pinned
        "HuggingFaceTB/SmolLM2-135M-Instruct@main",  # branch, not a commit
        "HuggingFaceTB/SmolLM2-135M-Instruct@abc123",  # short hash
        "builtin:gpt-5",
    ],
)
def test_base_model_must_be_builtin_or_pinned(ref):
    (problem,) = problems_of(MINIMAL.replace("builtin:tiny-llama", ref))
    assert problem.line == 3 or problem.field is None


def test_pinned_hub_ref_is_accepted():
    spec = parse_spec(MINIMAL.replace("builtin:tiny-llama", "org/model@" + "a" * 40))
    assert spec.base_model.endswith("a" * 40)


def test_epochs_xor_max_steps():
    (problem,) = problems_of(MINIMAL + "training: {epochs: 1, max_steps: 10}\n")
    assert problem.field == "training" and "not both" in problem.message


@pytest.mark.parametrize("layers", ["[3, 3]", "[-1]", "[]"])
def test_layers_to_transform_are_distinct_non_negative_indices(layers):
    (problem,) = problems_of(MINIMAL + f"lora:\n  r: 8\n  layers_to_transform: {layers}\n")
    assert problem.field == "lora.layers_to_transform" and problem.line == 7


def test_qlora_gets_4bit_defaults_and_lora_refuses_quantization():
    spec = parse_spec(MINIMAL + "method: qlora\n")
    assert spec.quantization.quant_type == "nf4" and spec.quantization.double_quant
    (problem,) = problems_of(MINIMAL + "quantization: {bits: 4}\n")
    assert "only used with method: qlora" in problem.message


def test_gate_metric_must_be_measured():
    text = MINIMAL + "eval:\n  metrics: [exact_match]\n  gate:\n    - {metric: rouge_l, min: 0.5}\n"
    (problem,) = problems_of(text)
    assert "rouge_l" in problem.message


def test_json_schema_metric_needs_schema():
    (problem,) = problems_of(MINIMAL + "eval: {metrics: [json_schema]}\n")
    assert "needs eval.json_schema" in problem.message


@pytest.mark.parametrize("path", ["../secrets.jsonl", "/etc/passwd.jsonl", "data/train.csv"])
def test_data_paths_stay_in_repo_and_are_jsonl(path):
    problems = problems_of(MINIMAL.replace("datasets/mini/train.jsonl", path))
    assert problems and problems[0].field.startswith("data")


def test_name_must_match_folder(tmp_path: Path):
    folder = tmp_path / "adapters" / "other"
    folder.mkdir(parents=True)
    (folder / "adapter.yaml").write_text(MINIMAL)
    with pytest.raises(InvalidInput) as info:
        load_spec(folder / "adapter.yaml")
    (problem,) = info.value.problems
    assert problem.field == "name" and problem.line == 1


def test_load_spec_sets_repo_root(toy_repo: Path):
    spec = load_spec(toy_repo / "adapters" / "toy")
    assert spec.root == toy_repo
    assert spec.train_path == toy_repo / "datasets/toy/train.jsonl"


def test_with_overrides_revalidates_and_switches_epochs_off():
    spec = parse_spec(TOY_SPEC.format(max_steps=30).replace("max_steps: 30", "epochs: 2"))
    changed = spec.with_overrides(**{"training.max_steps": 5})
    assert changed.training.max_steps == 5 and changed.training.epochs is None
    assert spec.training.epochs == 2  # the original is untouched


def test_json_schema_matches_the_model():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "version", "base_model", "data"}
    json.dumps(schema)  # serialisable
    assert set(schema["properties"]) == set(Spec.model_fields)


def test_docs_spec_reference_is_generated_from_the_model():
    from registry.spec.doc import render

    committed = (Path(__file__).parents[2] / "docs" / "spec.md").read_text()
    assert committed == render(), (
        "docs/spec.md is stale: python -m registry.spec.doc > docs/spec.md"
    )
