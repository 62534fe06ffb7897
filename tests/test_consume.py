"""The consumer API: pulled adapters load with plain PEFT, switch on one base, export merged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from registry.consume import export_merged, load
from registry.errors import InvalidInput
from registry.store import open_store
from registry.store.publish import publish_version


def real_adapter(folder: Path, tiny_model, *, name: str, seed: int) -> Path:
    """A real PEFT LoRA for the tiny model with non-zero B (so it changes the outputs)."""
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model

    torch.manual_seed(seed)
    model = get_peft_model(
        load_base_model(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    for pname, param in model.named_parameters():
        if "lora_B" in pname:
            torch.nn.init.normal_(param, std=0.5)
    model.save_pretrained(folder)
    fingerprint = f"sha256:{seed:064d}"
    (folder / "registry.json").write_text(
        json.dumps(
            {
                "name": name,
                "version": "1.0.0",
                "fingerprint": fingerprint,
                "base_model": tiny_model.provenance(),
                "spec": {"method": "lora"},
                "overrides": {},
                "training": {},
            }
        )
    )
    (folder / "report.json").write_text(
        json.dumps(
            {
                "fingerprint": fingerprint,
                "n_items": 1,
                "metrics": {},
                "gate": {"passed": True, "rules": []},
            }
        )
    )
    return folder


@pytest.fixture
def store(tmp_path: Path, tiny_model):
    store = open_store((tmp_path / "store").as_uri())
    for i, name in enumerate(["alpha", "beta"]):
        publish_version(name, real_adapter(tmp_path / name, tiny_model, name=name, seed=i), store)
        store.set_current(name, "1.0.0")
    return store


def plain_peft_answer(tiny_model, tiny_tokenizer, folder: Path, prompt: str) -> str:
    from peft import PeftModel

    from registry.spec.base_model import load_base_model

    model = PeftModel.from_pretrained(load_base_model(tiny_model), folder)
    text = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tiny_tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **ids, max_new_tokens=12, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id
        )
    return tiny_tokenizer.decode(
        out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
    ).strip()


def test_fleet_switches_adapters_and_matches_plain_peft(
    store, tmp_path, tiny_model, tiny_tokenizer
):
    fleet = load(["alpha@1.0.0", "beta"], store)
    prompt = [{"role": "user", "content": "dog"}]
    fleet.use("alpha")
    a = fleet.generate(prompt, 12)
    fleet.use("beta")
    b = fleet.generate(prompt, 12)
    assert a != b  # two adapters, two behaviours, one base in memory
    for name, got in (("alpha", a), ("beta", b)):
        pulled = tmp_path / f"pulled-{name}"
        from registry.store.pull import pull

        pull(f"{name}@1.0.0", store, out=pulled)
        assert got == plain_peft_answer(tiny_model, tiny_tokenizer, pulled, "dog")
    with pytest.raises(InvalidInput, match="not loaded"):
        fleet.use("gamma")


def test_export_merged_matches_adapter(store, tmp_path, tiny_model, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    result = export_merged("alpha@1.0.0", tmp_path / "merged", store, check_prompts=["dog", "cat"])
    assert result["matches"] == result["checked"] == 2
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", use_safetensors=True)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert (tmp_path / "merged" / "model.safetensors").exists()
