"""One rank of test_fsdp.test_fsdp_shards_the_base_and_untied_heads_match (run by torchrun).

A tiny Llama with an untied embedding and head, LoRA on it, trained 3 steps twice on every
rank: whole (each rank the full batch) and sharded by registry.train.fsdp (each rank half the
batch). Writes its numbers to $FSDP_RESULT-<rank>.json.
"""

from __future__ import annotations

import json
import os

import torch
from peft import LoraConfig, get_peft_model
from torch.distributed.fsdp import FSDPModule
from transformers import LlamaConfig, LlamaForCausalLM

from registry.train import distributed, fsdp
from registry.train.loss import CausalLMLoss
from registry.train.model import Trainable


def build():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=False)  # fmt: skip
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(LlamaForCausalLM(config), lora)


def run(d, sharded: bool):
    model = build()
    head = CausalLMLoss(model)
    if sharded:
        fsdp.shard(d, head, model, "cpu")
    trainable = Trainable(model)
    opt = torch.optim.AdamW(trainable.params, lr=1e-2)
    ids = torch.randint(0, 96, (4, 16), generator=torch.Generator().manual_seed(1))
    pos = torch.arange(16).repeat(4, 1)
    losses = []
    for _ in range(3):
        mine = ids[d.rank :: d.world_size] if sharded else ids
        loss = head(mine, pos[: len(mine)], mine.clone())
        (loss * (d.world_size if sharded else 1) / ids.numel()).backward()
        opt.step()
        opt.zero_grad()
        losses.append(distributed.sum_all(d, [loss.item()])[0] if sharded else loss.item())
    return head, model, losses, trainable.snapshot()


def main() -> None:
    d = distributed.setup()
    _, _, whole, whole_w = run(d, sharded=False)
    head, model, sharded, sharded_w = run(d, sharded=True)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    local = sum(p.to_local().numel() if fsdp.is_sharded(p) else p.numel() for p in frozen)
    total = sum(p.numel() for p in frozen)
    result = {
        "units": sum(isinstance(m, FSDPModule) for m in head.modules()),
        "local_fraction": local / total,
        "whole_losses": whole,
        "sharded_losses": sharded,
        "max_weight_diff": max((whole_w[k] - sharded_w[k]).abs().max().item() for k in whole_w),
    }
    with open(f"{os.environ['FSDP_RESULT']}-{d.rank}.json", "w") as f:
        json.dump(result, f)
    distributed.shutdown()


if __name__ == "__main__":
    main()
