"""Training on the tiny model: methods learn, runs are reproducible, resumable, cached, loadable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import toy_records, write_jsonl
from safetensors.torch import load_file

from registry.errors import InvalidInput
from registry.spec.schema import load_spec
from registry.train import train

FAST = {"training.max_steps": 12, "training.learning_rate": 1e-2}


def toy_spec(root: Path, **changes):
    spec = load_spec(root / "adapters/toy/adapter.yaml")
    return spec.with_overrides(**changes) if changes else spec


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def log(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "training_log.jsonl").read_text().splitlines()]


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("method", ["lora", "qlora", "dora"])
def test_each_method_lowers_validation_loss(toy_repo, tiny_model, method, tmp_path):
    spec = toy_spec(toy_repo, method=method, **FAST)
    result = train(spec, tmp_path / "out", progress=False)
    m = result.metrics
    assert not result.cached and m["steps"] == 12
    # Lower than the base on the held-out split: a direction, not one CPU's number (measured
    # drops of 0.37-0.38 nats on two machines).
    assert m["final_val_loss"] < m["base_val_loss"], m
    assert m["final_train_loss"] < m["base_val_loss"]
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "registry.json"} <= files
    assert {"training_log.jsonl", "loss.png"} <= files
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_model.model_id
    assert config["use_dora"] is (method == "dora")
    info = json.loads((result.adapter_dir / "registry.json").read_text())
    assert info["base_model"] == tiny_model.provenance()
    assert info["fingerprint"] == result.fingerprint
    assert info["spec"]["method"] == method and info["overrides"] == {}
    # Validation holds out part of train by default: the eval file does not shape the weights.
    assert set(info["datasets"]) == {"train"}
    assert set(info["packages"]) == {"torch", "transformers", "peft", "bitsandbytes", "registry"}
    assert info["training"]["pad_fraction"] < 0.5
    assert info["training"]["adapter_size_bytes"] > 0
    if method == "qlora":
        assert info["spec"]["quantization"]["quant_type"] == "nf4"


def test_output_loads_with_plain_peft_and_generates(toy_repo, tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = train(toy_spec(toy_repo, **FAST), tmp_path / "out", progress=False).adapter_dir
    base = AutoModelForCausalLM.from_pretrained(tiny_model.path)
    model = PeftModel.from_pretrained(base, out).eval()
    trained = tensors(out)
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(trained) > 0
    for key, value in trained.items():  # the saved weights are what got loaded
        assert torch.equal(loaded[key.replace(".weight", ".default.weight")], value)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model.path)
    ids = tokenizer("<|im_start|>user\nbig cat #1<|im_end|>\n", return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert generated.shape[1] > ids.shape[1]


def test_base_validation_loss_is_remembered_across_adapters(toy_repo, fresh_cache):
    cache = fresh_cache()
    spec = toy_spec(toy_repo, **FAST)
    first = train(spec, progress=False).metrics["base_val_loss"]
    (entry,) = (cache / "val-loss").glob("*.json")
    entry.write_text('{"value": 123.0}')  # a marker: a retrain must read it, not recompute
    assert train(spec, seed=5, progress=False).metrics["base_val_loss"] == 123.0
    entry.write_text("{damaged")
    assert train(spec, seed=6, progress=False).metrics["base_val_loss"] == pytest.approx(first)
    # other validation rows (a shorter max_seq_len cuts them) are another entry
    shorter = toy_spec(toy_repo, **FAST, **{"training.max_seq_len": 16})
    train(shorter, progress=False)
    assert len(list((cache / "val-loss").glob("*.json"))) == 2


def test_layers_to_transform_adapts_only_those_layers(toy_repo, tmp_path):
    spec = toy_spec(toy_repo, **FAST)
    upper = spec.with_overrides(**{"lora.layers_to_transform": [1]})
    result = train(upper, tmp_path / "out", progress=False)
    keys = tensors(result.adapter_dir).keys()
    assert keys and all(".layers.1." in k for k in keys)
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [1]
    assert result.fingerprint != train(spec, progress=False).fingerprint
    assert result.metrics["final_val_loss"] < result.metrics["base_val_loss"]


def test_layers_to_transform_beyond_the_model_is_invalid_input(toy_repo):
    spec = toy_spec(toy_repo, **FAST, **{"lora.layers_to_transform": [0, 2]})
    with pytest.raises(InvalidInput) as err:
        train(spec, progress=False)
    problem = err.value.problems[0]
    assert problem.field == "lora.layers_to_transform" and problem.line == 6  # the `lora:` line
    assert "layers 0..1, not 2" in problem.message and problem.file.endswith("adapter.yaml")


def test_same_seed_is_bitwise_identical_other_seed_differs(toy_repo, fresh_cache, tmp_path):
    spec = toy_spec(toy_repo, **FAST, **{"lora.dropout": 0.1})
    fresh_cache("a")
    first = train(spec, tmp_path / "out-a", progress=False)
    fresh_cache("b")
    second = train(spec, tmp_path / "out-b", progress=False)
    assert not second.cached and first.fingerprint == second.fingerprint
    assert_same(tensors(first.adapter_dir), tensors(second.adapter_dir))
    other = train(spec, tmp_path / "out-c", seed=1, progress=False)
    assert other.fingerprint != first.fingerprint
    a, c = tensors(first.adapter_dir), tensors(other.adapter_dir)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_cache_hit_skips_training_and_renames_the_copy(toy_repo, tmp_path):
    spec = toy_spec(toy_repo, **FAST)
    first = train(spec, tmp_path / "first", progress=False)
    bumped = spec.with_overrides(version="1.0.1", description="same weights, new text")
    again = train(bumped, tmp_path / "second", progress=False)
    assert again.cached  # proven below by identical weights and metrics, not by a timing
    assert again.fingerprint == first.fingerprint
    assert_same(tensors(first.adapter_dir), tensors(again.adapter_dir))
    info = json.loads((again.adapter_dir / "registry.json").read_text())
    assert info["version"] == "1.0.1" and info["spec"]["description"] == "same weights, new text"
    assert info["training"] == first.metrics


def test_overrides_change_the_fingerprint_and_are_recorded(toy_repo, tmp_path):
    spec = toy_spec(toy_repo, **FAST)
    plain = train(spec, tmp_path / "plain", progress=False)
    short = train(spec, tmp_path / "short", max_steps=3, seed=7, progress=False)
    assert short.fingerprint != plain.fingerprint and short.metrics["steps"] == 3
    info = json.loads((short.adapter_dir / "registry.json").read_text())
    assert info["overrides"] == {"max_steps": 3, "seed": 7}
    assert info["spec"]["training"]["max_steps"] == 12  # the spec as written
    # an "override" equal to the spec's own value is no override
    same = train(spec, tmp_path / "same", seed=spec.training.seed, progress=False)
    assert (
        same.cached
        and json.loads((same.adapter_dir / "registry.json").read_text())["overrides"] == {}
    )
    with pytest.raises(InvalidInput, match="base_model"):
        train(spec, base_model="gpt2", progress=False)


def test_log_plot_and_validation_fraction(toy_repo, tmp_path):
    spec = toy_spec(toy_repo, **FAST, **{"data.eval": None, "data.validation_fraction": 0.25})
    result = train(spec, tmp_path / "out", progress=False)
    assert result.metrics["val_examples"] == 16 and result.metrics["train_examples"] == 48
    capped = toy_spec(toy_repo, **FAST, **{"training.val_examples": 5})
    assert train(capped, progress=False).metrics["val_examples"] == 5
    entries = log(result.adapter_dir)
    assert [e["step"] for e in entries] == list(range(1, 13))
    assert all({"loss", "lr", "tokens", "tokens_per_s"} <= e.keys() for e in entries)
    assert sum("val_loss" in e for e in entries) >= 5 and "val_loss" in entries[-1]
    assert (result.adapter_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_keeps_the_best_adapter(toy_repo, tmp_path):
    # Provoked by the data, not by one CPU's trajectory: the validation answers are a string the
    # train set never has ("zzzz..."), so every step that raises the probability of the train
    # answers lowers theirs and the validation loss can only go up. Training stops after
    # `patience` evaluations without a new best, and delivers the best one.
    val = toy_records(16, seed=3, offset=2000)
    for record in val:
        record["messages"][-1]["content"] = "zzzz zzzz zzzz zzzz"
    write_jsonl(toy_repo / "datasets/toy/eval.jsonl", val)
    spec = toy_spec(
        toy_repo,
        **{"data.validation": "eval", "training.max_steps": 40, "training.learning_rate": 1e-2},
        **{"training.eval_every": 1, "training.early_stopping_patience": 2},
        **{"training.scheduler": "constant"},
    )
    out = train(spec, tmp_path / "out", progress=False)
    m = out.metrics
    val_losses = [e["val_loss"] for e in log(out.adapter_dir) if "val_loss" in e]
    assert m["stopped_early"] and m["steps"] < 40, (m, val_losses)
    assert m["adapter_step"] == m["best_step"] == m["steps"] - 2
    assert m["final_val_loss"] == m["best_val_loss"] == min(val_losses)
    assert val_losses[-1] > m["best_val_loss"] and val_losses[-2] > m["best_val_loss"]


def test_resume_with_nothing_to_resume_is_invalid_input(toy_repo, fresh_cache):
    fresh_cache()
    with pytest.raises(InvalidInput, match="nothing to resume"):
        train(toy_spec(toy_repo, **FAST), resume=True, progress=False)


CHILD = """
import sys
from registry.spec.schema import load_spec
from registry.train import train
spec = load_spec(sys.argv[1]).with_overrides(**{
    "training.max_steps": 40, "training.save_every": 4, "lora.dropout": 0.1})
train(spec, progress=False)
"""


@pytest.mark.reliability
def test_resume_after_kill_9_gives_the_uninterrupted_adapter(toy_repo, fresh_cache, tmp_path):
    cache = fresh_cache("killed")
    spec_file = toy_repo / "adapters/toy/adapter.yaml"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spec_file)],
        env={**os.environ, "REGISTRY_CACHE": str(cache)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not list((cache / "work").glob("*/checkpoint-*/state.json")):
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert not list((cache / "artifacts").glob("*/registry.json")), (
        "the run finished before the kill"
    )

    spec = load_spec(spec_file).with_overrides(
        **{"training.max_steps": 40, "training.save_every": 4, "lora.dropout": 0.1}
    )
    resumed = train(spec, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.metrics["resumed_from_step"] >= 4
    fresh_cache("straight")
    straight = train(spec, tmp_path / "straight", progress=False)
    assert straight.metrics["resumed_from_step"] is None
    assert_same(tensors(resumed.adapter_dir), tensors(straight.adapter_dir))
    assert resumed.metrics["final_val_loss"] == straight.metrics["final_val_loss"]


def test_ddp_two_processes_match_one(toy_repo, fresh_cache, tmp_path):
    """2 gloo ranks x 4 examples == 1 process x 8 examples, up to float summation order.

    Tolerance: the ranks' gradients are summed in another order and their rows packed
    differently, so values differ by float32 rounding (~1e-7 relative per op); Adam then
    normalises updates, so weights stay within ~1e-5 of each other over a dozen steps.
    """
    spec = toy_spec(toy_repo, **FAST)
    fresh_cache("single")
    single = train(spec, tmp_path / "single", progress=False)
    fresh_cache("ddp")
    ddp = train(spec, tmp_path / "ddp", nproc=2, progress=False)
    assert ddp.fingerprint == single.fingerprint and ddp.metrics["world_size"] == 2
    assert ddp.metrics["distributed"] == "ddp"  # auto: the tiny model fits, so replicate
    a, b = tensors(single.adapter_dir), tensors(ddp.adapter_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    assert ddp.metrics["tokens"] == single.metrics["tokens"]
    # the same loss and gradient norm at every step: each rank's share is weighted right
    for one, two in zip(log(single.adapter_dir), log(ddp.adapter_dir), strict=True):
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
    assert ddp.metrics["final_val_loss"] == pytest.approx(
        single.metrics["final_val_loss"], rel=1e-5
    )
