"""Frozen-prefix activations: the same training as the full forward, computed once, cached."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_train import FAST, tensors, toy_spec

from registry.train import batching, prefix, train

UPPER = {**FAST, "lora.layers_to_transform": [1]}  # the tiny model has layers 0 and 1


def test_prefix_path_trains_like_the_full_forward(toy_repo, fresh_cache, monkeypatch, tmp_path):
    spec = toy_spec(toy_repo, **UPPER)
    fresh_cache("off")
    monkeypatch.setenv(prefix.BUDGET_ENV, "0")
    full = train(spec, tmp_path / "full", progress=False)
    assert full.metrics["frozen_prefix_layers"] == 0
    fresh_cache("on")
    monkeypatch.delenv(prefix.BUDGET_ENV)
    fast = train(spec, tmp_path / "fast", progress=False)
    assert fast.metrics["frozen_prefix_layers"] == 1 and not fast.metrics["frozen_prefix_cached"]
    a, b = tensors(full.adapter_dir), tensors(fast.adapter_dir)
    assert a.keys() == b.keys()
    for key in a:  # equal up to float rounding (other matmul shapes), after 12 steps
        assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-3), key
    assert fast.metrics["final_val_loss"] == pytest.approx(full.metrics["final_val_loss"], 1e-4)
    assert fast.metrics["base_val_loss"] == pytest.approx(full.metrics["base_val_loss"], 1e-5)


def test_cached_prefix_gives_bitwise_the_same_adapter(toy_repo, fresh_cache, tmp_path):
    spec = toy_spec(toy_repo, **UPPER)
    first_cache = fresh_cache("a")
    first = train(spec, tmp_path / "a", progress=False)
    (entry,) = (first_cache / "prefix").glob("*.safetensors")
    second_cache = fresh_cache("b")  # no artifact to reuse, only the prefix states
    shutil.copytree(first_cache / "prefix", second_cache / "prefix")
    second = train(spec, tmp_path / "b", progress=False)
    assert second.metrics["frozen_prefix_cached"] and not second.cached
    a, b = tensors(first.adapter_dir), tensors(second.adapter_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # another rank (another fingerprint) on the same data reuses the states too
    other = train(spec.with_overrides(**{"lora.r": 4}), progress=False)
    assert other.metrics["frozen_prefix_cached"]
    # a damaged entry is computed again, not trusted
    entry.write_bytes(b"not safetensors")
    (second_cache / "prefix" / entry.name).write_bytes(b"\x00" * 64)
    third = train(spec, tmp_path / "c", seed=3, progress=False)
    assert not third.metrics["frozen_prefix_cached"]


def test_without_a_frozen_prefix_nothing_is_cached(toy_repo, fresh_cache):
    cache = fresh_cache()
    result = train(toy_spec(toy_repo, **FAST), progress=False)  # every layer adapted
    assert result.metrics["frozen_prefix_layers"] == 0 and not (cache / "prefix").exists()


def test_wrong_states_are_detected_and_the_shortcut_refused(toy_repo, tiny_model):
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model

    model = get_peft_model(
        load_base_model(tiny_model, device="cpu"),
        LoraConfig(r=4, target_modules=["q_proj"], layers_to_transform=[1]),
    )
    examples = [batching.TokenizedExample([5, 6, 7, 8], [-100, -100, 7, 8])] * 2
    layers = prefix.decoder_layers(model)
    args = {"max_seq_len": 64, "rows_per_batch": 2, "pad_id": 0, "packing": True}
    good = prefix.compute_states(model, examples, 1, "cpu", args)
    batch = batching.micro_batches(examples, [0, 1], **args, states=good)[0]
    assert prefix.agrees(model, layers, 1, batch, "cpu")
    wrong = batching.micro_batches(examples, [0, 1], **args, states=[s * 0 + 1 for s in good])[0]
    with pytest.warns(UserWarning, match="frozen-prefix cache disabled"):
        assert not prefix.agrees(model, layers, 1, wrong, "cpu")
    assert all("forward" not in vars(layer) for layer in layers)  # the bypass was undone
