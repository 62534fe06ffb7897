"""Base-model resolution: builtins are content-hashed, cached and rebuilt when corrupted."""

from __future__ import annotations

import pytest

from registry.errors import InvalidInput
from registry.spec.base_model import load_base_model, resolve_base_model, weights_sha256


def test_tiny_llama_is_deterministic_and_hashed(tiny_model):
    assert tiny_model.sha256 == weights_sha256(tiny_model.path)
    assert (tiny_model.path / "model.safetensors").exists()
    assert not list(tiny_model.path.glob("*.bin"))  # safetensors only


def test_corrupted_cache_is_rebuilt_to_the_same_hash(tiny_model):
    import registry.spec.base_model as models

    weights = tiny_model.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    models._RESOLVED.clear()
    again = resolve_base_model("builtin:tiny-llama")
    assert again.sha256 == tiny_model.sha256 == weights_sha256(again.path)


def test_tokenizer_has_chat_template_and_distinct_pad(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    ids = tiny_tokenizer("héllo {json}", add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == "héllo {json}"  # byte-level: lossless


def test_model_loads_and_generates(tiny_model, tiny_tokenizer):
    import torch

    model = load_base_model(tiny_model)
    ids = tiny_tokenizer("abc", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **ids, max_new_tokens=3, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id
        )
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


def test_unpinned_or_unknown_refs_are_invalid():
    with pytest.raises(InvalidInput):
        resolve_base_model("builtin:nope")
    with pytest.raises(InvalidInput, match="40-hex"):
        resolve_base_model("org/model@main")


def test_uncached_hub_model_is_a_clear_error_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    # huggingface_hub reads both at import: once another test has imported it, only its
    # constants decide (without this the call went to the network and took 23 s to fail)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InvalidInput, match="not in the local HF cache"):
        resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct@" + "0" * 40)


def test_the_bitsandbytes_kernels_notice_is_silenced_and_nothing_else(caplog):
    """bitsandbytes logs, on AVX512-BF16 CPUs, that the Hub-only `kernels` package is missing:
    noise on every model load (its own C kernel is used). Only that record is dropped."""
    import logging
    import subprocess
    import sys

    import registry  # noqa: F401  (installs the filter)

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "x")
        logger.warning("another bitsandbytes warning")
    assert caplog.messages == ["another bitsandbytes warning"]
    # and for real: peft imports bitsandbytes, which logs the notice at import on such CPUs
    proc = subprocess.run(
        [sys.executable, "-c", "import registry, peft"], capture_output=True, text=True, check=True
    )
    assert "kernels" not in proc.stderr, proc.stderr
