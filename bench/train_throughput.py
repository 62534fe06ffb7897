"""Training throughput: registry.train vs a minimal PEFT loop vs TRL's SFTTrainer.

    python bench/train_throughput.py --model smollm2 --steps 4
    python bench/train_throughput.py --model tiny --steps 8

Same model, LoRA config, optimizer, batch size and tokens for all three; two datasets:
- equal:    every example has exactly the same token length (no padding for anyone), so this
            measures pure loop overhead;
- variable: lengths uniform in [seq_len/8, seq_len], where TRL's default (pad each batch to its
            longest) and the minimal loop waste compute on padding, and packing does not.

Throughput is *useful* tokens/s (non-pad tokens, all of which are forwarded and backpropagated),
measured over the steps after the first (warm-up) one. Each contender runs in its own process
so peak memory (CPU: peak RSS; CUDA: max allocated) is its own. Targets: ours >= 1.0x TRL and
>= 0.95x the minimal loop on equal lengths, >= 1.5x TRL on variable lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"tiny": "builtin:tiny-llama", "smollm2": "builtin:smollm2-135m-instruct"}
CONTENDERS = ("ours", "minimal", "trl")
LR, R, ALPHA, TARGETS = 2e-4, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]

SPEC = """\
name: bench
version: 0.0.1
base_model: {base}
method: lora
lora: {{r: {r}, alpha: {alpha}, dropout: 0.0, target_modules: {targets}}}
data: {{format: chat, train: datasets/bench/{data}.jsonl}}
training: {{max_steps: {steps}, learning_rate: {lr}, batch_size: {batch}, max_seq_len: {seq},
           seed: 0, warmup_ratio: 0.0, scheduler: constant, packing: true}}
"""


# -- data --------------------------------------------------------------------------------------


def one_token_words(tokenizer, n: int = 400) -> list[str]:
    """Words that are exactly one token with a leading space: k words == k tokens."""
    candidates = [
        "".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 + i % 4))
        for i in range(20000)
    ] + "the a of to and in is it you that he was for on are as with his they at be".split()
    words = [
        w
        for w in dict.fromkeys(candidates)
        if len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1
    ]
    if len(words) < 20:  # a byte-level tokenizer: use fixed-width words instead (3 tokens each)
        words = [w for w in dict.fromkeys(candidates) if len(w) == 2]
    return words[:n]


def make_data(tokenizer, folder: Path, n: int, seq_len: int) -> dict[str, Path]:
    """Copy tasks (answer = the prompt's words reversed), equal and variable token lengths."""
    from registry.data import Example, tokenize_example

    words = one_token_words(tokenizer)
    rng = random.Random(0)

    def record(k: int) -> dict:
        picked = [rng.choice(words) for _ in range(k)]
        return {"messages": [
            {"role": "user", "content": "Reverse:" + "".join(" " + w for w in picked)},
            {"role": "assistant", "content": "Reversed:" + "".join(" " + w for w in reversed(picked))},
        ]}  # fmt: skip

    def length(rec: dict) -> int:
        m = rec["messages"]
        return len(tokenize_example(tokenizer, Example("x", 1, m[1]["content"], messages=(m[0],))))

    # words per example such that the whole example is ~seq_len tokens
    per_word = max(1, (length(record(40)) - length(record(0))) // 40)
    fixed = length(record(0))
    max_words = (seq_len - fixed) // (2 * per_word)
    equal = [record(max_words) for _ in range(n)]
    variable = [record(rng.randint(max(1, max_words // 8), max_words)) for _ in range(n)]
    assert len({length(r) for r in equal}) == 1, "equal-length data is not equal"
    paths = {}
    for name, records in (("equal", equal), ("variable", variable)):
        paths[name] = folder / "datasets" / "bench" / f"{name}.jsonl"
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths


# -- workers (one process each) ----------------------------------------------------------------


def peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tokenized(root: Path, data: str, base: str, seq: int):
    from registry.data import load_examples, tokenize_example
    from registry.models import load_tokenizer, resolve_base_model

    resolved = resolve_base_model(base)
    tok = load_tokenizer(resolved)
    examples = load_examples(root / "datasets" / "bench" / f"{data}.jsonl", "chat")
    return resolved, tok, [tokenize_example(tok, ex, seq) for ex in examples]


def clock() -> float:
    """Seconds by the chosen clock: wall, or this process's CPU time (see --clock)."""
    return time.process_time() if CLOCK == "cpu" else time.perf_counter()


CLOCK = "wall"


def run_ours(args) -> dict:
    import registry.train
    from registry.spec import parse_spec
    from registry.train import train

    if CLOCK == "cpu":  # the loop times its steps with time.perf_counter: give it the CPU clock
        registry.train.time = type("CpuClock", (), {"perf_counter": staticmethod(clock)})

    spec = parse_spec(SPEC.format(base=MODELS[args.model], r=R, alpha=ALPHA, targets=TARGETS,
                                  data=args.data, steps=args.steps + 1, lr=LR,
                                  batch=args.batch_size, seq=args.seq_len))  # fmt: skip
    spec._root = args.root
    result = train(spec, progress=False)
    log = [
        json.loads(x) for x in (result.adapter_dir / "training_log.jsonl").read_text().splitlines()
    ]
    # per-step tokens and time from the log, skipping the warm-up step
    tokens = sum(e["tokens"] for e in log[1:])
    seconds = sum(e["tokens"] / e["tokens_per_s"] for e in log[1:])
    return {"tokens": tokens, "seconds": seconds, "pad_fraction": result.metrics["pad_fraction"],
            "loss": log[-1]["loss"]}  # fmt: skip


def run_minimal(args) -> dict:
    """The loop everyone writes first: pad each batch to its longest, model(..., labels=...)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from registry.batching import step_examples  # the same batches as ours
    from registry.models import load_base_model

    resolved, tok, examples = tokenized(args.root, args.data, MODELS[args.model], args.seq_len)
    torch.manual_seed(0)
    model = get_peft_model(
        load_base_model(resolved),
        LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS),
    )
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    model.train()
    tokens = seconds = pads = 0
    for step in range(args.steps + 1):
        t0 = clock()
        batch = [examples[i] for i in step_examples(len(examples), args.batch_size, step, seed=0)]
        width = max(len(e) for e in batch)
        ids = torch.tensor(
            [e.input_ids + [tok.pad_token_id] * (width - len(e)) for e in batch], device=device
        )
        labels = torch.tensor([e.labels + [-100] * (width - len(e)) for e in batch], device=device)
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in batch], device=device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if step:  # skip the warm-up step
            seconds += clock() - t0
            tokens += int(mask.sum())
            pads += mask.numel() - int(mask.sum())
    return {
        "tokens": tokens,
        "seconds": seconds,
        "pad_fraction": pads / (pads + tokens),
        "loss": loss.item(),
    }


def run_trl(args) -> dict:
    """TRL's SFTTrainer with its default (padded, unpacked) batching, completion-only loss."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from registry.models import load_base_model

    resolved, tok, examples = tokenized(args.root, args.data, MODELS[args.model], args.seq_len)
    dataset = Dataset.from_list([
        {"input_ids": e.input_ids, "completion_mask": [int(x != -100) for x in e.labels]} for e in examples
    ])  # fmt: skip
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            marks.append((clock(), state.num_input_tokens_seen))

    cuda = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=str(args.root / "trl-out"), max_steps=args.steps + 1, learning_rate=LR,
        per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, max_length=args.seq_len,
        packing=False, gradient_checkpointing=False,  # as ours: same compute, not the memory recipe
        bf16=cuda, use_cpu=not cuda, report_to="none", save_strategy="no", logging_steps=1000,
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0, seed=0,
        disable_tqdm=True,
    )  # fmt: skip
    torch.manual_seed(0)
    trainer = SFTTrainer(
        model=load_base_model(resolved), args=config, train_dataset=dataset, processing_class=tok,
        peft_config=LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS),
        callbacks=[Clock()],
    )  # fmt: skip
    out = trainer.train()
    (t1, n1), (t2, n2) = marks[0], marks[-1]  # from the end of the warm-up step to the last
    return {"tokens": n2 - n1, "seconds": t2 - t1, "pad_fraction": None, "loss": out.training_loss}


def worker(args) -> None:
    global CLOCK
    CLOCK = args.clock
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = {"ours": run_ours, "minimal": run_minimal, "trl": run_trl}[args.worker](args)
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    result["peak_mb"] = peak_mb()
    print("RESULT " + json.dumps(result), flush=True)


# -- driver ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--steps", type=int, default=4, help="measured steps (after 1 warm-up)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved rounds; the best of each is kept"
    )
    parser.add_argument("--data", default="equal,variable")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: time steps by process CPU time, with 1 thread unless --threads says otherwise; "
        "robust when other jobs share the machine",
    )
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clock == "cpu" and not args.threads:
        args.threads = 1  # with several threads, CPU time counts their spin-waits too
    if args.worker:
        return worker(args)

    from registry.models import cache_dir, load_tokenizer, resolve_base_model

    models = cache_dir() / "models"
    resolved = resolve_base_model(MODELS[args.model])  # convert once, outside the timings
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        make_data(
            load_tokenizer(resolved),
            root,
            n=args.batch_size * (args.steps + 1),
            seq_len=args.seq_len,
        )
        rows = []
        # rounds interleave the contenders, so a burst of load from elsewhere hits all of them
        for data in args.data.split(","):
            for attempt in range(args.repeat):
                for name in args.only.split(","):
                    result = run_worker(
                        root / f"cache-{data}-{name}-{attempt}", models, root, data, name, args
                    )
                    rows.append((data, name, result))
                    print(f"{data:9s} {name:8s} {result['tokens_per_s']:9.1f} tok/s  "
                          f"peak {result['peak_mb']:8.1f} MB  pad {_pct(result['pad_fraction'])}",
                          flush=True)  # fmt: skip
    print_table(rows, args)


def run_worker(cache: Path, models: Path, root: Path, data: str, name: str, args) -> dict:
    """One contender in a fresh process with a fresh artifact cache (so nothing is reused)."""
    cache.mkdir()
    (cache / "models").symlink_to(models.resolve())
    env = {**os.environ, "REGISTRY_CACHE": str(cache), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker", name, "--root", str(root), "--data", data,
           "--model", args.model, "--steps", str(args.steps), "--batch-size",
           str(args.batch_size), "--seq-len", str(args.seq_len)]  # fmt: skip
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--clock", args.clock]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        sys.exit(f"{name} on {data} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1].removeprefix("RESULT "))


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def print_table(rows, args) -> None:
    by: dict[tuple[str, str], dict] = {}
    for d, n, r in rows:  # best of the rounds
        if (d, n) not in by or r["tokens_per_s"] > by[(d, n)]["tokens_per_s"]:
            by[(d, n)] = r
    per = "CPU second, 1 thread" if args.clock == "cpu" else "second"
    print(f"\nmodel {MODELS[args.model]}, batch {args.batch_size} x <= {args.seq_len} tokens, "
          f"{args.steps} measured steps, useful (non-pad) tokens per {per}\n")  # fmt: skip
    print(
        "| data     | ours tok/s | minimal tok/s | TRL tok/s | ours/minimal | ours/TRL | peak MB ours/min/TRL |"
    )
    print(
        "|----------|-----------:|--------------:|----------:|-------------:|---------:|----------------------|"
    )
    for data in args.data.split(","):
        o, m, t = (by.get((data, n)) for n in CONTENDERS)

        def tps(r):
            return f"{r['tokens_per_s']:.1f}" if r else "-"

        def ratio(a, b):
            return f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x" if a and b else "-"

        peaks = "/".join(f"{r['peak_mb']:.0f}" if r else "-" for r in (o, m, t))
        print(
            f"| {data:8s} | {tps(o):>10s} | {tps(m):>13s} | {tps(t):>9s} | {ratio(o, m):>12s} | {ratio(o, t):>8s} | {peaks:20s} |"
        )


if __name__ == "__main__":
    main()
