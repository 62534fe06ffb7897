"""The memory plan: its estimate against measured peaks, and `train --dry-run` refusing a spec
that cannot fit. Gradient checkpointing changes memory, not the loss trajectory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from registry.cli import cli
from registry.errors import InvalidInput
from registry.spec.schema import load_spec
from registry.train.memory import (
    GIB,
    choose_strategy,
    dry_run,
    estimate,
    random_llama_config,
)


# Measured in a fresh process: the rise of resident memory over one forward + backward +
# AdamW step, against the plan's non-weight terms (the weights are resident before). A fixed
# mmap threshold makes glibc return freed buffers, so RSS tracks live tensor bytes.
def _spec(root: Path, training: str, lora: str = "dropout: 0.05") -> Path:
    path = root / "adapters" / "toy" / "adapter.yaml"
    text = path.read_text()
    text = text.replace("dropout: 0.0", lora)
    text = text.replace("batch_size: 8, max_seq_len: 128", training)
    path.write_text(text)
    return path


def test_checkpointing_shrinks_the_activation_term():
    spec = load_spec_text_free()
    config = random_llama_config("builtin:random-llama-8b")
    off = estimate(spec, config, device="cuda", gradient_checkpointing=False)
    on = estimate(spec, config, device="cuda", gradient_checkpointing=True)
    assert on.activations < off.activations / 5
    assert on.weights == off.weights and on.logits == off.logits
    # 8B at bf16 is ~15 GiB of weights (8.03B params): the plan counts the real shape
    assert 14.5 * GIB < off.weights < 15.5 * GIB
    qlora = estimate(spec.with_overrides(method="qlora"), config, device="cuda")
    assert qlora.weights < off.weights / 1.8  # NF4 linears; fp32 embeddings and head


def load_spec_text_free():
    """The shipped ticket-json spec: a real recipe at real batch and sequence sizes."""
    root = Path(__file__).resolve().parents[2]
    return load_spec(root / "adapters" / "ticket-json" / "adapter.yaml")


def test_dry_run_refuses_a_spec_that_cannot_fit(toy_repo, monkeypatch):
    monkeypatch.chdir(toy_repo)
    runner = CliRunner()
    args = ["train", "toy", "--dry-run", "--base-model", "builtin:random-llama-8b"]
    small = runner.invoke(cli, [*args, "--gpu-memory", "8"])
    # InvalidInput is exit 2 at the entry point (registry.cli's main); CliRunner keeps it
    assert isinstance(small.exception, InvalidInput) and small.exception.exit_code == 2
    assert "exceeds --gpu-memory 8.00 GiB" in str(small.exception)
    assert "qlora" in str(small.exception)  # the hint
    assert "estimated peak" in small.output  # the plan is printed before the refusal
    big = runner.invoke(cli, [*args, "--gpu-memory", "80"])
    assert big.exit_code == 0, big.output
    assert "fits:" in big.output and "estimated peak" in big.output
    # nothing was trained or written
    assert not (toy_repo / "runs").exists()


def test_dry_run_plans_for_the_processes_it_is_given(toy_repo, monkeypatch):
    # the same spec that one 20 GB device refuses fits two when auto shards it (fsdp)
    monkeypatch.chdir(toy_repo)
    args = ["train", "toy", "--dry-run", "--base-model", "builtin:random-llama-8b"]
    one = CliRunner().invoke(cli, [*args, "--gpu-memory", "20"])
    two = CliRunner().invoke(cli, [*args, "--gpu-memory", "20", "--nproc", "2"])
    assert isinstance(one.exception, InvalidInput), one.output
    assert two.exit_code == 0, two.output
    assert "2 processes" in two.output and "distributed: fsdp (auto" in two.output


def test_random_builtins_are_planned_but_not_trained(toy_repo, monkeypatch):
    monkeypatch.chdir(toy_repo)
    result = CliRunner().invoke(
        cli, ["train", "toy", "--max-steps", "1", "--base-model", "builtin:random-llama-1b"]
    )
    assert isinstance(result.exception, InvalidInput), result.output
    assert "--dry-run" in str(result.exception)


def _losses(spec_path: Path, tiny_model, steps: int) -> list[float]:
    from registry.train.loss import CausalLMLoss
    from registry.train.model import build_model

    spec = load_spec(spec_path)
    model = build_model(spec, tiny_model, "cpu", torch.float32)
    wanted = spec.training.gradient_checkpointing
    assert model.get_base_model().is_gradient_checkpointing is wanted  # the key took effect
    model.train()
    loss_fn = CausalLMLoss(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    ids = torch.randint(0, 250, (4, 64), generator=torch.Generator().manual_seed(1))
    pos = torch.arange(64).repeat(4, 1)
    out = []
    torch.manual_seed(3)  # dropout: the same draws in both runs (checkpointing replays them)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(ids, pos, ids.clone())
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def test_gradient_checkpointing_keeps_the_loss_trajectory(toy_repo, tiny_model):
    shape = "batch_size: 4, max_seq_len: 64"
    plain = _losses(_spec(toy_repo, shape + ", gradient_checkpointing: false"), tiny_model, 4)
    spec = toy_repo / "adapters" / "toy" / "adapter.yaml"
    spec.write_text(
        spec.read_text().replace("gradient_checkpointing: false", "gradient_checkpointing: true")
    )
    from registry.train.model import use_checkpointing

    assert use_checkpointing(load_spec(spec), None, "cpu")
    ckpt = _losses(spec, tiny_model, 4)
    assert plain[-1] < plain[0]  # it trains
    assert ckpt == pytest.approx(plain, rel=1e-4)


def test_runtime_keys_are_not_fingerprinted():
    from registry.spec.fingerprint import weights_spec

    spec = load_spec_text_free()
    runtime = {"training.gradient_checkpointing": True, "training.attn_implementation": "eager",
               "training.distributed": "fsdp"}  # fmt: skip
    assert weights_spec(spec.with_overrides(**runtime)) == weights_spec(spec)
    assert weights_spec(spec.with_overrides(**{"training.batch_size": 4})) != weights_spec(spec)


def test_auto_distributed_picks_fsdp_only_when_the_replicated_model_does_not_fit():
    spec = load_spec_text_free()  # ticket-json: LoRA, batch 8 x 256 tokens
    config = random_llama_config("builtin:random-llama-8b")
    replicated = estimate(spec, config, device="cuda", world_size=4)
    assert 24 * GIB < replicated.total < 80 * GIB  # 8B in bf16: ~15 GiB of weights alone
    assert choose_strategy(spec, replicated, 80 * GIB)[0] == "ddp"
    strategy, why = choose_strategy(spec, replicated, 24 * GIB)
    assert strategy == "fsdp" and "24.00 GiB" in why
    assert choose_strategy(spec, replicated, None)[0] == "ddp"  # memory unknown: replicate
    for chosen in ("ddp", "fsdp"):  # the key, when set, is obeyed
        pinned = spec.with_overrides(**{"training.distributed": chosen})
        assert choose_strategy(pinned, replicated, 24 * GIB)[0] == chosen
        assert choose_strategy(pinned, replicated, 80 * GIB)[0] == chosen

    # FSDP over 4: a quarter of the weights plus the gathered units (a layer and the next,
    # or a layer and the untied embedding); the adapter's state shrinks too; activations do
    # not change
    ckpt = {"gradient_checkpointing": True}
    whole = estimate(spec, config, device="cuda", world_size=4, **ckpt)
    quarter = estimate(spec, config, device="cuda", world_size=4, sharded=True, **ckpt)
    assert quarter.sharded and not whole.sharded
    assert whole.weights / 4 < quarter.weights < whole.weights / 4 + 1.5 * GIB
    assert quarter.adapter < whole.adapter and quarter.activations == whole.activations
    assert quarter.total < 16 * GIB < whole.total
    # QLoRA: the 4-bit linears stay replicated (FSDP2 cannot shard Params4bit)
    qspec = spec.with_overrides(method="qlora")
    q_whole = estimate(qspec, config, device="cuda", **ckpt)
    q_sharded = estimate(qspec, config, device="cuda", world_size=4, sharded=True, **ckpt)
    linears = q_whole.weights - (config.vocab_size * config.hidden_size * 2) * 4
    assert linears < q_sharded.weights < q_whole.weights


def test_dry_run_names_the_strategy_and_hints_fsdp():
    spec = load_spec_text_free()
    _, lines, check = dry_run(spec, 24, "builtin:random-llama-8b", nproc=4)
    text = "\n".join(lines)
    assert "distributed: fsdp (auto:" in text and "fsdp-sharded over 4" in text
    check()  # sharded over 4, it fits 24 GB
    _, lines, check = dry_run(spec, 80, "builtin:random-llama-8b", nproc=4)
    assert "distributed: ddp (auto: the replicated model fits" in "\n".join(lines)
    _, lines, check = dry_run(spec, 24, "builtin:random-llama-8b")  # one process
    assert "with --nproc N > 1, fsdp" in "\n".join(lines)
    with pytest.raises(InvalidInput) as err:
        check()
    hint = err.value.problems[0].hint
    assert "training.distributed: fsdp with --nproc 2" in hint and "fits" in hint
