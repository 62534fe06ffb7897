"""general_drift: exactly zero for an untouched adapter, growing with damage."""

from __future__ import annotations

import pytest

from registry.evaluate.drift import general_drift, load_general_prompts


def _peft(tiny_model, adapter_name: str = "adapter"):
    import torch
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"])
    model = get_peft_model(load_base_model(tiny_model), config, adapter_name=adapter_name)
    return model.eval()


def _damage(model, scale: float, seed: int = 0) -> None:
    """Random LoRA B weights (fresh adapters have B = 0, i.e. no effect)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)


PROMPTS = load_general_prompts()[:12]  # a subset keeps the test fast; drift is a mean anyway


def test_general_prompts_ship_with_the_package() -> None:
    prompts = load_general_prompts()
    assert 35 <= len(prompts) <= 60
    assert len({p["id"] for p in prompts}) == len(prompts)
    assert all(p["prompt"].strip() for p in prompts)


def test_fresh_adapter_has_zero_drift(tiny_model, tiny_tokenizer) -> None:
    model = _peft(tiny_model)
    result = general_drift(model, tiny_tokenizer, prompts=PROMPTS, max_new_tokens=8)
    assert result.value < 1e-6
    assert len(result.per_prompt) == len(PROMPTS)


def test_drift_grows_with_damage(tiny_model, tiny_tokenizer) -> None:
    model = _peft(tiny_model)
    values = []
    for scale in (0.05, 0.5):
        _damage(model, scale)
        values.append(general_drift(model, tiny_tokenizer, prompts=PROMPTS, max_new_tokens=8))
    small, large = values
    assert small.value > 1e-4
    assert large.value > 3 * small.value
    worst_id, worst = large.top(1)[0]
    assert worst == pytest.approx(max(large.per_prompt.values()))
    assert worst_id in {p["id"] for p in PROMPTS}


def test_drift_measures_the_named_adapter(tiny_model, tiny_tokenizer) -> None:
    """With two adapters loaded, only the named one is measured (the base passes disable both)."""
    model = _peft(tiny_model, adapter_name="adapter")
    _damage(model, 0.5)
    from peft import LoraConfig

    model.add_adapter(
        "clean", LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"])
    )
    model.eval()
    clean = general_drift(model, tiny_tokenizer, adapter="clean", prompts=PROMPTS, max_new_tokens=8)
    damaged = general_drift(
        model, tiny_tokenizer, adapter="adapter", prompts=PROMPTS, max_new_tokens=8
    )
    assert clean.value < 1e-6 < damaged.value
