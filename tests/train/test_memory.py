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
from registry.train.memory import GIB, estimate, random_llama_config


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
    runtime = {"training.gradient_checkpointing": True, "training.attn_implementation": "eager"}
    assert weights_spec(spec.with_overrides(**runtime)) == weights_spec(spec)
    assert weights_spec(spec.with_overrides(**{"training.batch_size": 4})) != weights_spec(spec)
