"""Generation, reference loss, and evaluate() end to end on the tiny model.

About "a clearly better adapter": the tiny random Llama cannot learn the toy task's exact
strings in a few dozen steps. Its tied embeddings are initialised with std 0.02, so logits are
capped near +-1.3 and the training loss cannot go much below ~4.3 nats. Measured: 30 steps of
LoRA (q/k/v/o, lr 5e-3) take the eval reference loss from 5.42 to 4.93 and teach it to stop
(EOS rate 0 -> 1), but exact match stays 0; 150 steps at lr 1e-2 on all linear layers still
answer "qu"/"qqqq". So:
- a peft-trained adapter is checked on what it does learn, the reference-answer `loss`;
- the "clearly better on exact_match" case uses a fixed random adapter as the task definition:
  its greedy answers ARE the eval references, so it scores 1.0 where the base scores 0.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from registry.errors import InvalidInput
from registry.evaluate.generate import generate, reference_losses
from registry.evaluate.markdown import md
from registry.evaluate.report_md import MARKER
from registry.evaluate.run import _with_shots, evaluate
from registry.spec.data import load_examples, prompt_ids, tokenize_example
from registry.spec.schema import load_spec

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


EXACT_MATCH_GATE = [{"metric": "exact_match", "min_delta_vs_base": 0.2}]


def _spec(repo: Path, **overrides):
    """The toy spec gated on exact_match (the conftest toy gates on loss, for training)."""
    overrides = {"eval.metrics": ["exact_match"], "eval.gate": EXACT_MATCH_GATE, **overrides}
    return load_spec(repo / "adapters" / "toy" / "adapter.yaml").with_overrides(**overrides)


def _peft(tiny_model):
    import torch
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model

    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS)
    return get_peft_model(load_base_model(tiny_model), config)


def _damage(model, scale: float, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    return model.eval()


def _train(model, tokenizer, repo: Path, steps: int = 30, lr: float = 5e-3):
    """A minimal LoRA loop on the toy train set (train.py is not needed for this test)."""
    import torch

    spec = _spec(repo)
    examples = load_examples(spec.train_path, "chat", spec.data.system_prompt)
    rows = [tokenize_example(tokenizer, ex) for ex in examples]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng, pad = random.Random(0), tokenizer.pad_token_id
    model.train()
    for _ in range(steps):
        batch = rng.sample(rows, 8)
        width = max(len(r) for r in batch)
        ids = torch.tensor([r.input_ids + [pad] * (width - len(r)) for r in batch])
        labels = torch.tensor([r.labels + [-100] * (width - len(r)) for r in batch])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in batch])
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def _rewrite_eval(repo: Path, answers: dict[str, str]) -> None:
    path = repo / "datasets" / "toy" / "eval.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["messages"][-1]["content"] = answers.get(
            record["id"], record["messages"][-1]["content"]
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


# -- generation --------------------------------------------------------------------------------


def test_batched_generation_equals_one_by_one(tiny_model, tiny_tokenizer, toy_repo) -> None:
    """Left padding + attention mask + position ids: a padded prompt decodes as if alone."""
    spec = _spec(toy_repo)
    items = load_examples(spec.eval_path, "chat", spec.data.system_prompt)[:5]
    prompts = [prompt_ids(tiny_tokenizer, ex) for ex in items]
    prompts += [tiny_tokenizer("hi", add_special_tokens=False)["input_ids"], prompts[0] * 3]
    assert len({len(p) for p in prompts}) >= 3  # really different lengths -> real padding
    model = _damage(_peft(tiny_model), 0.3)
    for contender in ("adapter", "base"):
        if contender == "base":
            context = model.disable_adapter()
        else:
            import contextlib

            context = contextlib.nullcontext()
        with context:
            batched = generate(model, tiny_tokenizer, prompts, max_new_tokens=10, batch_size=4)
            single = [
                generate(model, tiny_tokenizer, [p], max_new_tokens=10, batch_size=1)[0]
                for p in prompts
            ]
        assert [g.token_ids for g in batched] == [g.token_ids for g in single]
        assert [g.stopped for g in batched] == [g.stopped for g in single]
    assert len({g.text for g in batched}) > 1  # outputs depend on the prompt: a meaningful check


def test_generation_stops_on_any_eos_and_flags_it(tiny_model, tiny_tokenizer) -> None:
    import torch

    from registry.spec.base_model import load_base_model

    model = load_base_model(tiny_model)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # every logit is 0 -> greedy picks token id 0
    prompt = [tiny_tokenizer("cat", add_special_tokens=False)["input_ids"]]
    [cut] = generate(model, tiny_tokenizer, prompt, max_new_tokens=5)
    assert (cut.token_ids, cut.stopped) == ([0] * 5, False)
    model.generation_config.eos_token_id = [0]  # the model's own EOS list counts too
    [stopped] = generate(model, tiny_tokenizer, prompt, max_new_tokens=5)
    assert (stopped.token_ids, stopped.text, stopped.stopped) == ([], "", True)


def test_remembered_generations_are_keyed_by_weights_id(
    tiny_model, tiny_tokenizer, monkeypatch, tmp_path
) -> None:
    import torch

    from registry.spec.base_model import load_base_model

    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    prompts = [tiny_tokenizer(w, add_special_tokens=False)["input_ids"] for w in ("cat", "dog")]
    model = load_base_model(tiny_model)
    first = generate(model, tiny_tokenizer, prompts, max_new_tokens=6, weights_id="w1")
    with torch.no_grad():
        model.model.norm.weight.zero_()  # other weights: every logit is 0 -> token 0
    # Same weights id: the remembered outputs come back without generating.
    assert generate(model, tiny_tokenizer, prompts, max_new_tokens=6, weights_id="w1") == first
    # Another id, other settings, or no id: generated from the (changed) weights.
    for kwargs in ({"weights_id": "w2"}, {"weights_id": "w1", "max_new_tokens": 5}, {}):
        kwargs = {"max_new_tokens": 6, **kwargs}
        fresh = generate(model, tiny_tokenizer, prompts, **kwargs)
        assert all(set(g.token_ids) == {0} for g in fresh)
    # A damaged entry is generated again, not trusted.
    for entry in (tmp_path / "cache" / "generations").rglob("*.json"):
        entry.write_text("{broken")
    again = generate(model, tiny_tokenizer, prompts, max_new_tokens=6, weights_id="w1")
    assert all(set(g.token_ids) == {0} for g in again)


def test_reference_losses_match_unbatched_loss(tiny_model, tiny_tokenizer, toy_repo) -> None:
    import torch

    spec = _spec(toy_repo)
    rows = [
        tokenize_example(tiny_tokenizer, ex)
        for ex in load_examples(spec.eval_path, "chat", spec.data.system_prompt)[:6]
    ]
    model = _damage(_peft(tiny_model), 0.1)
    batched = reference_losses(model, tiny_tokenizer, rows, batch_size=4)
    with torch.no_grad():
        single = [
            model(
                input_ids=torch.tensor([r.input_ids]), labels=torch.tensor([r.labels])
            ).loss.item()
            for r in rows
        ]
    assert batched == pytest.approx(single, abs=1e-4)


# -- evaluate end to end -----------------------------------------------------------------------


def test_no_better_adapter_fails_and_report_is_complete(
    tiny_model, tiny_tokenizer, toy_repo, tmp_path, monkeypatch
) -> None:
    hostile = "<script>alert(1)</script> | `rm -rf` [x](http://evil.example) @octocat"
    _rewrite_eval(toy_repo, {"toy-1000": hostile})
    adapter = tmp_path / "zero"
    _peft(tiny_model).save_pretrained(adapter)  # fresh LoRA: B = 0, identical to the base
    (adapter / "registry.json").write_text(
        json.dumps(
            {
                "fingerprint": "sha256:feedface",
                "training": {"wall_s": 12.5, "steps": 30},
                "overrides": {"training.max_steps": 30},
            }
        )
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    spec = _spec(toy_repo, **{"eval.few_shot": 2, "eval.metrics": ["exact_match", "rouge_l"]})

    report = evaluate(spec, adapter, out=tmp_path / "out", progress=False)

    assert not report.passed
    assert report.contenders == ["base", "prompt_baseline", "adapter"]
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    for key in ("name", "version", "fingerprint", "n_items", "contenders", "metrics"):
        assert key in data
    for key in ("comparisons", "general_drift", "gate", "warnings", "items", "overrides", "cost"):
        assert key in data
    assert (data["name"], data["version"], data["n_items"]) == ("toy", "1.0.0", 16)
    assert data["fingerprint"] == "sha256:feedface"
    assert data["cost"]["train_wall_s"] == 12.5 and data["cost"]["eval_wall_s"] > 0
    assert data["overrides"] == {"training.max_steps": 30}
    assert data["general_drift"] < 1e-6
    assert data["metrics"]["exact_match"]["adapter"] == data["metrics"]["exact_match"]["base"]
    em = next(c for c in data["comparisons"] if c["metric"] == "exact_match" and c["b"] == "base")
    assert (em["delta"], em["test"], em["n"]) == (0.0, "mcnemar", 16)
    assert {c["b"] for c in data["comparisons"]} == {"base", "prompt_baseline"}
    [rule] = data["gate"]["rules"]
    assert (rule["rule"], rule["passed"]) == ("min_delta_vs_base", False)
    item = data["items"][0]
    assert item["reference"] == hostile
    assert set(item["outputs"]) == set(item["scores"]) == {"base", "prompt_baseline", "adapter"}

    text = (tmp_path / "out" / "report.md").read_text()
    assert text.splitlines()[0] == MARKER
    assert "Gate FAILED" in text.splitlines()[1]
    assert "| metric | base | prompt baseline | adapter | Δ vs base [95% CI] | p |" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    row = next(line for line in text.splitlines() if "rm -rf" in line)
    assert not re.search(r"(?<!\\)[`\[\]]", row)  # code spans and links are all escaped
    assert row.count("|") - row.count("\\|") == 6  # the pipe did not add a table cell
    assert "@octocat" not in text  # no @mention
    assert summary.read_text().startswith(MARKER)
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'failures="1"' in junit and "<failure" in junit
    assert (tmp_path / "out" / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_clearly_better_adapter_passes(tiny_model, tiny_tokenizer, toy_repo, tmp_path) -> None:
    spec = _spec(toy_repo)
    teacher = _damage(_peft(tiny_model), 0.3, seed=1)
    items = load_examples(spec.eval_path, "chat", spec.data.system_prompt)
    answers = generate(
        teacher,
        tiny_tokenizer,
        [prompt_ids(tiny_tokenizer, ex) for ex in items],
        max_new_tokens=spec.eval.max_new_tokens,
    )
    assert all(a.text.strip() for a in answers)
    _rewrite_eval(toy_repo, {ex.id: a.text for ex, a in zip(items, answers, strict=True)})
    teacher.save_pretrained(tmp_path / "teacher")

    report = evaluate(spec, tmp_path / "teacher", progress=False)

    assert report.metrics["exact_match"]["adapter"] == 1.0
    assert report.metrics["exact_match"]["base"] <= 0.1
    assert report.passed, report.gate.failing
    assert report.general_drift > 1e-3  # a random adapter does move general behaviour
    text = (tmp_path / "teacher" / "report.md").read_text()  # out defaults to adapter_dir
    assert "Gate PASSED" in text


def test_trained_adapter_lowers_reference_loss(tiny_model, tiny_tokenizer, toy_repo, tmp_path):
    spec = _spec(
        toy_repo,
        **{
            "eval.metrics": ["exact_match", "loss"],
            "eval.gate": [{"metric": "loss", "min_delta_vs_base": 0.2}],
        },
    )
    _train(_peft(tiny_model), tiny_tokenizer, toy_repo).save_pretrained(tmp_path / "trained")

    report = evaluate(spec, tmp_path / "trained", progress=False)

    loss = report.metrics["loss"]
    assert loss["adapter"] < loss["base"] - 0.2
    assert report.passed, report.gate.failing


def test_regression_against_previous_version(tiny_model, tiny_tokenizer, toy_repo, tmp_path):
    spec = _spec(
        toy_repo,
        **{
            "eval.metrics": ["loss"],
            "eval.gate": [{"metric": "loss", "max_regression_vs_previous": 0.05}],
        },
    )
    _peft(tiny_model).save_pretrained(tmp_path / "fresh")
    _train(_peft(tiny_model), tiny_tokenizer, toy_repo).save_pretrained(tmp_path / "trained")

    report = evaluate(
        spec, tmp_path / "fresh", previous_adapter_dir=tmp_path / "trained", progress=False
    )

    assert report.contenders == ["base", "adapter", "previous"]
    assert report.metrics["loss"]["previous"] < report.metrics["loss"]["adapter"]
    [rule] = report.gate.rules
    assert rule.rule == "max_regression_vs_previous" and not rule.passed


def test_few_shot_turns_come_before_the_item(toy_repo) -> None:
    spec = _spec(toy_repo)
    train = load_examples(spec.train_path, "chat", spec.data.system_prompt)[:2]
    item = load_examples(spec.eval_path, "chat", spec.data.system_prompt)[0]
    turns = _with_shots(item, train).messages
    assert [t["role"] for t in turns] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert turns[2]["content"] == train[0].answer
    assert turns[-1] == item.messages[-1]


def test_baseline_system_prompt_replaces_the_system_turn_for_the_baseline_only(toy_repo) -> None:
    spec = _spec(toy_repo, **{"eval.baseline_system_prompt": "A long engineered prompt."})
    train = load_examples(spec.train_path, "chat", spec.data.system_prompt)[:1]
    item = load_examples(spec.eval_path, "chat", spec.data.system_prompt)[0]
    turns = _with_shots(item, train, spec.eval.baseline_system_prompt).messages
    assert turns[0] == {"role": "system", "content": "A long engineered prompt."}
    assert sum(t["role"] == "system" for t in turns) == 1
    assert turns[-1] == item.messages[-1]
    # the adapter's own input keeps the training prompt
    assert item.messages[0]["content"] == spec.data.system_prompt


def test_baseline_system_prompt_leads_a_completion_prompt() -> None:
    from registry.spec.data import Example

    item = Example("i", 1, "4", prompt="2+2=")
    shot = Example("s", 1, "2", prompt="1+1=")
    assert _with_shots(item, [shot], "Add.").prompt == "Add.\n\n1+1=2\n\n2+2="


def test_bad_inputs_are_invalid_input(tiny_model, toy_repo, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="adapter_config.json"):
        evaluate(_spec(toy_repo), tmp_path / "empty", progress=False)
    spec = _spec(toy_repo, **{"eval.metrics": ["json_field_f1"], "eval.gate": []})
    with pytest.raises(InvalidInput, match="eval.jsonl:1: json_field_f1 needs JSON"):
        evaluate(spec, tmp_path / "empty", progress=False)


def test_markdown_escaping() -> None:
    assert md("a|b") == "a\\|b"
    assert md("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert md("![x](http://t.co/p.png)") == "!\\[x\\](http:\u200b//t.co/p.png)"
    assert md("line1\nline2") == "line1 ⏎ line2"
    assert md("x" * 500).endswith("…") and len(md("x" * 500)) == 161
    assert md("") == "∅"
