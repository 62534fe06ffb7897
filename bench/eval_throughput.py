"""Evaluation throughput: batched vs one-by-one greedy generation, and eval cost vs training.

    python bench/eval_throughput.py                     # builtin:smollm2-135m-instruct
    python bench/eval_throughput.py --registry-json runs/x/registry.json   # real training time
    python bench/eval_throughput.py --quick             # tiny model, a few prompts: a smoke run

Prints (1) generated tokens/s for batch 16 vs batch 1 on the same prompts, their ratio, and
whether both produced the same tokens; (2) seconds per training step of a minimal LoRA loop
(r=8 on q/k/v/o, batch 8 x 128 tokens, fp32) in the same process, so both numbers share the
machine's current load; (3) what a typical evaluation costs relative to training.
RATIO lines: the batched speed-up (target >= 3x) and eval cost / training cost (target <= 1:
checking an adapter should not cost more than making it).
Numbers on a shared CPU are noisy: run it twice before trusting a ratio. On a CPU other jobs
keep busy, multi-threaded torch can thrash (spinning OpenMP threads); `--threads 1` is steadier.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import parse_args, ratio  # noqa: E402


def _prompts(tokenizer, n: int) -> list[list[int]]:
    from registry.evaluate.drift import load_general_prompts

    texts = [p["prompt"] for p in load_general_prompts()]
    texts = (texts * (n // len(texts) + 1))[:n]
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts
    ]
    return [tokenizer(r, add_special_tokens=False)["input_ids"] for r in rendered]


def _generation(model, tokenizer, prompts, max_new_tokens: int, batch_size: int):
    from registry.evaluate.generate import generate

    start = time.perf_counter()
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    wall = time.perf_counter() - start
    tokens = sum(len(g.token_ids) + (1 if g.stopped else 0) for g in gens)
    return gens, wall, tokens


def _train_step_seconds(model, tokenizer, steps: int, batch: int = 8, seq: int = 128) -> float:
    """A minimal LoRA loop like the trainer's inner step: forward, backward, AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        model,
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    )
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-4)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tokenizer), (batch, seq), generator=gen)
    times = []
    for step in range(steps + 1):  # the first step warms up allocators: not timed
        start = time.perf_counter()
        peft_model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:
            times.append(time.perf_counter() - start)
    peft_model.unload()  # leave the base model as it was
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (1 is steadier on a busy CPU)")
    parser.add_argument("--registry-json", type=Path, help="read training wall time from here")
    parser.add_argument("--eval-items", type=int, default=200, help="for the cost projection")
    parser.add_argument("--train-examples", type=int, default=1000, help="for the projection")
    parser.add_argument("--epochs", type=float, default=2.0, help="for the projection")
    args = parse_args(
        parser,
        {"model": "builtin:tiny-llama", "prompts": 8, "max_new_tokens": 8, "train_steps": 1,
         "batch_size": 8},
    )  # fmt: skip

    import torch

    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model

    if args.threads:
        torch.set_num_threads(args.threads)

    resolved = resolve_base_model(args.model)
    tokenizer = load_tokenizer(resolved)
    model = load_base_model(resolved).eval()
    prompts = _prompts(tokenizer, args.prompts)
    print(f"model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{len(prompts)} prompts, {args.max_new_tokens} new tokens max, greedy\n")

    _generation(model, tokenizer, prompts[:2], 4, 2)  # warm-up
    batched, b_wall, b_tokens = _generation(
        model, tokenizer, prompts, args.max_new_tokens, args.batch_size
    )
    single, s_wall, s_tokens = _generation(model, tokenizer, prompts, args.max_new_tokens, 1)
    same = sum(a.token_ids == b.token_ids for a, b in zip(batched, single, strict=True))
    print(f"batch {args.batch_size:>2}: {b_wall:7.2f} s  {b_tokens / b_wall:7.1f} tokens/s")
    print(f"batch  1: {s_wall:7.2f} s  {s_tokens / s_wall:7.1f} tokens/s")
    print(f"speed-up: {s_wall / b_wall:.2f}x   identical outputs: {same}/{len(prompts)}\n")

    eval_s_per_item = b_wall / len(prompts)
    step_s = _train_step_seconds(model, tokenizer, args.train_steps)
    train_s_per_example = step_s / 8
    print(f"training: {step_s:.2f} s/step (batch 8 x 128 tokens) = {train_s_per_example:.3f} s/ex")
    print(f"eval generation: {eval_s_per_item:.3f} s/item per contender at batch {args.batch_size}")

    # A full eval = every item for each of base, prompt baseline and adapter, plus the 40 drift
    # prompts (generation on the base + two teacher-forced passes, ~1.2 item-equivalents).
    eval_s = eval_s_per_item * (3 * args.eval_items + 40 * 1.2)
    if args.registry_json:
        provenance = json.loads(args.registry_json.read_text())
        training = provenance.get("training", {})
        train_s = training.get("wall_s") or provenance.get("train_wall_s")
        source = f"from {args.registry_json}"
    else:
        train_s = train_s_per_example * args.train_examples * args.epochs
        source = f"projected: {args.train_examples} examples x {args.epochs:g} epochs"
    print(
        f"\nprojected eval of {args.eval_items} items (3 contenders + drift): {eval_s:.0f} s; "
        f"training ({source}): {train_s:.0f} s; eval/training = {eval_s / train_s:.2f}"
    )
    name = args.model.removeprefix("builtin:")
    ratio(
        f"eval batch {args.batch_size} vs one-by-one generation",
        f"{s_wall / b_wall:.2f}x",
        ">= 3x",
        f"greedy, {len(prompts)} prompts x <= {args.max_new_tokens} new tokens, "
        f"{torch.get_num_threads()} threads, identical outputs {same}/{len(prompts)}; {name}",
    )
    ratio(
        "eval cost / training cost",
        f"{eval_s / train_s:.2f}",
        "<= 1",
        f"{args.eval_items} items x 3 contenders + 40 drift prompts vs training {source}; {name}",
    )


if __name__ == "__main__":
    main()
