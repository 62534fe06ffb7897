"""Training throughput: registry.train (its loop) vs a minimal PEFT loop vs TRL's SFTTrainer (+ QLoRA).

    python bench/train_throughput.py --model smollm2 --steps 3
    python bench/train_throughput.py --quick          # tiny model, 2 steps, equal lengths

Same model, LoRA config, optimizer, batch size and tokens for all three; two datasets
(train_data.py):
- equal:    every example has exactly the same token length (no padding for anyone), so this
            measures pure loop overhead;
- variable: lengths uniform in [seq_len/8, seq_len], where TRL's default (pad each batch to its
            longest) and the minimal loop waste compute on padding, and packing does not.
QLoRA rows (--qlora, on by default): ours (method: qlora) vs the minimal loop on the same 4-bit
base (registry.spec.base_model.load_base_model with the spec's default nf4 + double-quant settings and
peft's prepare_model_for_kbit_training, as registry.train.model does), equal lengths.

Throughput is *useful* tokens/s (non-pad tokens, all of which are forwarded and backpropagated),
measured over the steps after the first (warm-up) one. Each contender runs in its own process
so peak memory (CPU: peak RSS; CUDA: max allocated) is its own.

Achieved training FLOP/s = FLOPs per token x useful tokens/s, with FLOPs per token
= 4 x N_frozen + 6 x N_lora: the frozen base's matmul weights N_frozen (decoder layers; the
embedding lookup, the LM head and attention's seq^2 terms left out) cost 2 per weight in the
forward pass and 2 for the input gradients, and get no weight gradients; the LoRA weights get
all three (the usual 6 x N x tokens would overstate LoRA work by ~1.5x). It is reported as a
fraction of the matmul peak (bench/matmul_peak.py) measured in this run, on the same threads.

Targets: ours >= 1.0x TRL and >= 0.95x the minimal loop on equal lengths, >= 1.5x TRL on
variable lengths, peak memory <= TRL's, QLoRA ours >= 0.95x the minimal QLoRA loop.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import parse_args, ratio

MODELS = {"tiny": "builtin:tiny-llama", "smollm2": "builtin:smollm2-135m-instruct"}
CONTENDERS = ("ours", "minimal", "trl")
LR, R, ALPHA, TARGETS = 2e-4, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]

SPEC = """\
name: bench
version: 0.0.1
base_model: {base}
method: {method}
lora: {{r: {r}, alpha: {alpha}, dropout: 0.0, target_modules: {targets}}}
data: {{format: chat, train: datasets/bench/{data}.jsonl}}
training: {{max_steps: {steps}, learning_rate: {lr}, batch_size: {batch}, max_seq_len: {seq},
           seed: 0, warmup_ratio: 0.0, scheduler: constant, packing: true}}
"""


# -- workers (one process each) ----------------------------------------------------------------


def peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tokenized(root: Path, data: str, base: str, seq: int):
    from registry.spec.base_model import load_tokenizer, resolve_base_model
    from registry.spec.data import load_examples, tokenize_example

    resolved = resolve_base_model(base)
    tok = load_tokenizer(resolved)
    examples = load_examples(root / "datasets" / "bench" / f"{data}.jsonl", "chat")
    return resolved, tok, [tokenize_example(tok, ex, seq) for ex in examples]


def clock() -> float:
    """Seconds by the chosen clock: wall, or this process's CPU time (see --clock)."""
    return time.process_time() if CLOCK == "cpu" else time.perf_counter()


CLOCK = "wall"


def run_ours(args) -> dict:
    import registry.train.loop
    from registry.spec.schema import parse_spec
    from registry.train import train

    if CLOCK == "cpu":  # the loop times its steps with time.perf_counter: give it the CPU clock
        registry.train.loop.time = type("CpuClock", (), {"perf_counter": staticmethod(clock)})

    spec = parse_spec(SPEC.format(base=MODELS[args.model], method=args.method, r=R, alpha=ALPHA,
                                  targets=TARGETS, data=args.data, steps=args.steps + 1, lr=LR,
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


def _minimal_base(resolved, method: str):
    """The base model as the minimal loop gets it; for QLoRA the same 4-bit recipe as ours."""
    from registry.spec.base_model import default_device, load_base_model

    if method != "qlora":
        return load_base_model(resolved)
    from peft import prepare_model_for_kbit_training

    from registry.spec.schema import QuantizationConfig

    model = load_base_model(resolved, quantization=QuantizationConfig())
    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=default_device().startswith("cuda"),  # as registry.train.model
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def run_minimal(args) -> dict:
    """The loop everyone writes first: pad each batch to its longest, model(..., labels=...)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from registry.train.batching import step_examples  # the same batches as ours

    resolved, tok, examples = tokenized(args.root, args.data, MODELS[args.model], args.seq_len)
    torch.manual_seed(0)
    model = get_peft_model(
        _minimal_base(resolved, args.method),
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

    from registry.spec.base_model import load_base_model

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


def flops_per_token(model_dir: Path) -> tuple[float, int, int]:
    """(4 * N_frozen + 6 * N_lora, N_frozen, N_lora) from the checkpoint's tensor shapes."""
    from safetensors import safe_open

    frozen = lora = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), "pt") as fh:
            for key in fh.keys():
                shape = fh.get_slice(key).get_shape()
                if len(shape) != 2 or "embed_tokens" in key or "lm_head" in key:
                    continue  # norms, biases, the embedding lookup, the (often tied) LM head
                frozen += math.prod(shape)
                if any(f".{t}." in key for t in TARGETS):
                    lora += R * sum(shape)  # A: r x in, B: out x r
    return 4.0 * frozen + 6.0 * lora, frozen, lora


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
    parser.add_argument("--qlora", action=argparse.BooleanOptionalAction, default=True,
                        help="also ours vs minimal on the 4-bit base, equal lengths")  # fmt: skip
    parser.add_argument("--peak-size", type=int, default=2048, help="matmul size for the peak")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: time steps by process CPU time, with 1 thread unless --threads says otherwise; "
        "robust when other jobs share the machine",
    )
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=("lora", "qlora"), default="lora", help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parse_args(
        parser, {"model": "tiny", "steps": 2, "data": "equal", "peak_size": 1024, "clock": "cpu"}
    )
    import torch

    if args.clock == "cpu" and torch.cuda.is_available():
        args.clock = "wall"  # GPU work is asynchronous: process CPU time does not measure it
    if args.clock == "cpu" and not args.threads:
        args.threads = 1  # with several threads, CPU time counts their spin-waits too
    if args.worker:
        return worker(args)

    from matmul_peak import peak_flops
    from train_data import make_data

    from registry.spec.base_model import load_tokenizer, resolve_base_model

    if args.threads:
        torch.set_num_threads(args.threads)  # the peak on the workers' thread count
    resolved = resolve_base_model(MODELS[args.model])  # convert once, outside the timings
    timer = time.process_time if args.clock == "cpu" else None  # the same clock as the steps
    peaks = [peak_flops(args.peak_size, timer=timer)]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        make_data(load_tokenizer(resolved), root, n=args.batch_size * (args.steps + 1),
                  seq_len=args.seq_len)  # fmt: skip
        runs = [(d, "lora", n) for d in args.data.split(",") for n in args.only.split(",")]
        if args.qlora:
            runs += [("equal", "qlora", n) for n in ("ours", "minimal")]
        rows = []
        # rounds interleave the contenders, so a burst of load from elsewhere hits all of them
        for attempt in range(args.repeat):
            for data, method, name in runs:
                result = run_worker(root / f"c-{data}-{method}-{name}-{attempt}", root, data,
                                    method, name, args)  # fmt: skip
                rows.append((data, method, name, result))
                print(f"{data:9s} {method:6s} {name:8s} {result['tokens_per_s']:9.1f} tok/s  "
                      f"peak {result['peak_mb']:8.1f} MB  pad {_pct(result['pad_fraction'])}",
                      flush=True)  # fmt: skip
    peaks.append(peak_flops(args.peak_size, timer=timer))  # before and after: the best is the peak
    report(rows, args, max(peaks), flops_per_token(Path(resolved.path)))


def run_worker(cache: Path, root: Path, data: str, method: str, name: str, args) -> dict:
    """One contender in a fresh process with a fresh artifact cache (so nothing is reused)."""
    from benchkit import isolated_cache

    env = {**os.environ, "REGISTRY_CACHE": str(isolated_cache(cache)),
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    cmd = [sys.executable, __file__, "--worker", name, "--method", method, "--root", str(root),
           "--data", data, "--model", args.model, "--steps", str(args.steps), "--batch-size",
           str(args.batch_size), "--seq-len", str(args.seq_len)]  # fmt: skip
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--clock", args.clock]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        sys.exit(f"{name} ({method}) on {data} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1].removeprefix("RESULT "))


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def report(rows, args, peak: float, fpt: tuple[float, int, int]) -> None:
    """The tables, then the RATIO lines (only for contenders that ran)."""
    import torch

    by: dict[tuple[str, str, str], dict] = {}
    for d, m, n, r in rows:  # best of the rounds
        if (d, m, n) not in by or r["tokens_per_s"] > by[(d, m, n)]["tokens_per_s"]:
            by[(d, m, n)] = r
    per_token, frozen, lora = fpt
    per = "CPU second, 1 thread" if args.clock == "cpu" else "second"
    model = MODELS[args.model]
    print(f"\nmodel {model}, batch {args.batch_size} x <= {args.seq_len} tokens, "
          f"{args.steps} measured steps, useful (non-pad) tokens per {per}\n")  # fmt: skip
    print("| data | method | contender | tok/s | peak MB | pad | GFLOP/s | of matmul peak |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (d, m, n), r in by.items():
        achieved = per_token * r["tokens_per_s"]
        print(f"| {d} | {m} | {n} | {r['tokens_per_s']:.1f} | {r['peak_mb']:.0f} | "
              f"{_pct(r['pad_fraction']).strip()} | {achieved / 1e9:.2f} | {achieved / peak:.1%} |")  # fmt: skip
    print(f"\nFLOPs per useful token = 4 x N_frozen + 6 x N_lora = 4 x {frozen:,} + 6 x {lora:,} "
          f"= {per_token / 1e6:.1f} MFLOP (forward + input gradients of the frozen base, "
          f"+ weight gradients of LoRA; LM head and attention scores left out); matmul peak "
          f"measured in this run: {peak / 1e9:.1f} GFLOP/s\n")  # fmt: skip

    def tps(d, m, n):
        r = by.get((d, m, n))
        return r["tokens_per_s"] if r else None

    where = f"{model.removeprefix('builtin:')}, batch {args.batch_size}x{args.seq_len}"
    lines = [
        ("equal", "minimal", ">= 0.95x", "useful tokens/s, same batches, equal lengths"),
        ("equal", "trl", ">= 1.0x", "useful tokens/s vs SFTTrainer, equal lengths"),
        ("variable", "minimal", "-", "useful tokens/s, variable lengths (packing vs padding)"),
        ("variable", "trl", ">= 1.5x", "useful tokens/s vs SFTTrainer, variable lengths"),
    ]
    for d, other, target, what in lines:
        ours, ref = tps(d, "lora", "ours"), tps(d, "lora", other)
        if ours and ref:
            label = "TRL" if other == "trl" else other
            ratio(f"train ours/{label} tok/s, {d} lengths", f"{ours / ref:.2f}x", target,
                  f"{what}; {where}")  # fmt: skip
    peaks = {n: max((r["peak_mb"] for (d, m, k), r in by.items() if m == "lora" and k == n),
                    default=None) for n in ("ours", "trl")}  # fmt: skip
    kind = "CUDA max allocated" if torch.cuda.is_available() else "peak RSS"
    if peaks["ours"] and peaks["trl"]:
        ratio("train peak memory ours/TRL", f"{peaks['ours'] / peaks['trl']:.2f}x", "<= 1.0x",
              f"{kind} {peaks['ours']:.0f} / {peaks['trl']:.0f} MB; {where}")  # fmt: skip
    for d in args.data.split(","):
        if tps(d, "lora", "ours"):
            frac = per_token * tps(d, "lora", "ours") / peak
            ratio(f"train FLOP/s / matmul peak, ours, {d} lengths", f"{frac:.1%}", "-",
                  f"(4*N_frozen + 6*N_lora) x useful tok/s over the {peak / 1e9:.0f} GFLOP/s "
                  f"matmul peak of this run; {where}")  # fmt: skip
    q_ours, q_min = tps("equal", "qlora", "ours"), tps("equal", "qlora", "minimal")
    if q_ours and q_min:
        ratio("train QLoRA ours/minimal tok/s", f"{q_ours / q_min:.2f}x", ">= 0.95x",
              f"4-bit nf4 base, same batches, equal lengths; {where}")  # fmt: skip
        lora_peak, q_peak = by.get(("equal", "lora", "ours")), by[("equal", "qlora", "ours")]
        if lora_peak:
            ratio("train QLoRA/LoRA peak memory, ours",
                  f"{q_peak['peak_mb'] / lora_peak['peak_mb']:.2f}x", "< 1.0x",
                  f"{kind} {q_peak['peak_mb']:.0f} / {lora_peak['peak_mb']:.0f} MB, a high-water "
                  f"mark over loading and training; {where}")  # fmt: skip


if __name__ == "__main__":
    main()
