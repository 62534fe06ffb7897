"""Batching: data order, packing, collation, and that packed examples never see each other."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from registry.spec.data import IGNORE_INDEX, TokenizedExample
from registry.train.batching import collate, micro_batches, pack, shard, step_examples


def _example(n: int, prompt: int, seed: int = 0) -> TokenizedExample:
    rng = random.Random(seed)
    ids = [rng.randrange(3, 200) for _ in range(n)]
    return TokenizedExample(ids, [IGNORE_INDEX] * prompt + ids[prompt:])


def test_step_examples_is_a_seeded_pure_function_covering_each_epoch():
    n, batch = 10, 4
    order = [i for step in range(5) for i in step_examples(n, batch, step, seed=3)]
    assert Counter(order[:10]) == Counter(range(10))  # epoch 0: every example once
    assert Counter(order[10:20]) == Counter(range(10))  # epoch 1, steps straddling the boundary
    assert order[:10] != order[10:20]  # reshuffled per epoch
    assert step_examples(n, batch, 3, seed=3) == step_examples(n, batch, 3, seed=3)
    assert step_examples(n, batch, 0, seed=3) != step_examples(n, batch, 0, seed=4)


def test_shards_partition_the_global_batch():
    ids = step_examples(9, 8, 2, seed=0)
    parts = [shard(ids, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids)
    assert [len(p) for p in parts] == [3, 3, 2]


def test_pack_respects_capacity_and_places_every_example_once():
    rng = random.Random(0)
    lengths = {i: rng.randint(1, 100) for i in range(50)}
    rows = pack(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(50))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    # first-fit decreasing gets close to the lower bound on rows
    assert len(rows) <= sum(lengths.values()) // 128 + 3
    assert (
        pack({}, 128) == []
        and micro_batches([], [], max_seq_len=8, rows_per_batch=2, pad_id=0) == []
    )
    assert pack(lengths, 128, packing=False) == [
        [i] for i in sorted(lengths, key=lambda i: (-lengths[i], i))
    ]


def test_collate_shifts_targets_inside_each_example_and_restarts_positions():
    a, b = _example(5, 2, seed=1), _example(4, 1, seed=2)
    batch = collate([[a, b], [b]], pad_id=0)
    assert batch.input_ids.shape == (2, 9)
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    # example a: targets = labels[1:], then nothing for its last token (no peeking at b)
    assert batch.targets[0, :5].tolist() == [*a.labels[1:], IGNORE_INDEX]
    assert batch.targets[0, 5:].tolist() == [*b.labels[1:], IGNORE_INDEX]
    # row 1: b then padding; pads continue b's positions and are never trained
    assert batch.position_ids[1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert batch.targets[1, 4:].eq(IGNORE_INDEX).all()
    assert (batch.tokens, batch.pad_tokens) == (13, 5)
    assert batch.n_targets == (3 + 3) + 3


def test_packing_keeps_padding_low_on_variable_lengths():
    rng = random.Random(0)
    examples = [_example(rng.randint(16, 256), 8, seed=i) for i in range(64)]
    ids = list(range(64))
    padded = micro_batches(
        examples, ids, max_seq_len=256, rows_per_batch=8, pad_id=0, packing=False
    )
    packed = micro_batches(examples, ids, max_seq_len=256, rows_per_batch=8, pad_id=0)

    def pad_fraction(batches):
        return sum(b.pad_tokens for b in batches) / sum(b.pad_tokens + b.tokens for b in batches)

    assert sum(b.tokens for b in packed) == sum(len(e) for e in examples)
    assert pad_fraction(packed) < 0.05
    assert pad_fraction(padded) < 0.10  # even unpacked, rows are grouped by length
    assert sum(b.input_ids.numel() for b in packed) < sum(b.input_ids.numel() for b in padded)


@pytest.fixture(scope="module")
def lora_head(tiny_model):
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model
    from registry.train.loss import CausalLMLoss

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return CausalLMLoss(get_peft_model(load_base_model(tiny_model, device="cpu"), config)).eval()


def test_packed_example_loss_equals_its_loss_alone(lora_head):
    examples = [_example(n, n // 3, seed=n) for n in (23, 7, 41, 12)]
    with torch.no_grad():
        alone = [lora_head(*_inputs(collate([[ex]], pad_id=0))).item() for ex in examples]
        packed = collate([examples], pad_id=0)
        together = lora_head(*_inputs(packed)).item()
        # the same row with positions running on (no resets) lets examples see each other
        leaky = lora_head(packed.input_ids, torch.arange(83)[None], packed.targets).item()
    assert together == pytest.approx(sum(alone), rel=1e-5)
    assert leaky != pytest.approx(sum(alone), rel=1e-3)


def test_packed_logits_equal_logits_alone(tiny_model):
    from registry.spec.base_model import load_base_model

    model = load_base_model(tiny_model, device="cpu").eval()
    a, b = _example(19, 0, seed=5), _example(11, 0, seed=6)
    with torch.no_grad():
        la = model(input_ids=torch.tensor([a.input_ids])).logits[0]
        lb = model(input_ids=torch.tensor([b.input_ids])).logits[0]
        batch = collate([[a, b]], pad_id=0)
        lp = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits[0]
    torch.testing.assert_close(lp[:19], la, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp[19:], lb, atol=1e-5, rtol=1e-5)


def _inputs(batch):
    return batch.input_ids, batch.position_ids, batch.targets
