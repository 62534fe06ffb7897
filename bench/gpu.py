"""GPU bench: LoRA/QLoRA training throughput and peak memory at real Llama shapes, vs the plan.

One prepared script of at most ~8 minutes (a time guard skips what is left, and says so). On CUDA,
for builtin:random-llama-1b and -8b (random weights built in memory from the public configs, no
download): our loop's training tokens/s and peak allocated memory for LoRA and QLoRA, the memory
plan's estimate next to it (registry.train.memory), model FLOP utilisation, TRL SFTTrainer with
the same settings when trl is installed, and batched generation tokens/s. Writes
bench/results-gpu.md naming the GPU.

On CPU (no CUDA) it is a smoke test: the 1B shape cut to --layers layers, a couple of steps at
a tiny sequence length, LoRA only; numbers are printed, not meaningful.

`--fsdp N` adds LoRA rows trained sharded over N processes (FSDP2 through torchrun, as
`training.distributed: fsdp` trains; registry/train/fsdp.py): on N GPUs where there are that
many, else on the CPU with gloo (a smoke run). Each rank trains its own batch: tokens/s is the
sum over ranks, peak memory rank 0's.

    python bench/gpu.py                 # on a GPU runner
    python bench/gpu.py --fsdp 8        # ... with 8 GPUs: also sharded over 8
    python bench/gpu.py --layers 2 --seq 16 --steps 2 --out /tmp/r.md   # CPU smoke
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry.spec.schema import load_spec  # noqa: E402
from registry.train.loss import CausalLMLoss  # noqa: E402
from registry.train.memory import GIB, RANDOM_LLAMA_SHAPES, estimate  # noqa: E402

# Dense bf16 peak (no sparsity) by device name, for MFU; unknown devices get no MFU.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def random_llama(ref: str, device: str, dtype: torch.dtype, layers: int | None = None):
    """The builtin's shape with deterministic random weights, allocated once on `device`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = dict(RANDOM_LLAMA_SHAPES[ref])
    if layers is not None:
        shape["num_hidden_layers"] = layers
    config = LlamaConfig(**shape, attn_implementation="sdpa", use_cache=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.to_empty(device=device)
    model.tie_weights()  # to_empty unties a tied head: it would be a second, random matrix
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    # buffers (rope's inv_freq) are not parameters: rebuild them for real on `device`
    model.model.rotary_emb = type(model.model.rotary_emb)(config).to(device)
    return model.to(dtype)


def spec_for(ref: str, method: str, batch: int, seq: int, ckpt: bool):
    """ticket-json's LoRA recipe at this shape: the settings both trainers use."""
    spec = load_spec(ROOT / "adapters" / "ticket-json" / "adapter.yaml")
    return spec.with_overrides(
        **{
            "base_model": ref,
            "method": method,
            "lora.layers_to_transform": None,
            "training.batch_size": batch,
            "training.max_seq_len": seq,
            "training.gradient_checkpointing": ckpt,
        }
    )


def peft_wrap(model, spec, ckpt: bool):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if spec.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=ckpt,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )  # fmt: skip
    elif ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = spec.lora
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules, task_type="CAUSAL_LM",
    )  # fmt: skip
    torch.manual_seed(0)
    return get_peft_model(model, config)


def qlora_base(ref: str, device: str, layers: int | None):
    """4-bit needs bitsandbytes' loader: save the random bf16 weights once, reload quantized."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        random_llama(ref, device, torch.bfloat16, layers).save_pretrained(tmp)
        _free(device)
        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )  # fmt: skip
        return AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=quant, device_map={"": device}, dtype=torch.bfloat16
        )


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_ours(model, batch: int, seq: int, steps: int, device: str, loss_fn=None) -> dict:
    """Timed steps of our loss head (or `loss_fn`, e.g. a sharded one) + AdamW after one
    warm-up step; peak = allocator max."""
    model.train()
    loss_fn = loss_fn or CausalLMLoss(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.get_base_model().config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq), generator=gen).to(device)
    pos = torch.arange(seq, device=device).repeat(batch, 1)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(ids, pos, ids) / ids.numel()
        loss.backward()
        opt.step()
        return loss.item()

    losses = [step()]
    _sync(device)
    start = time.perf_counter()
    losses += [step() for _ in range(steps)]
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    return {"tok_s": batch * seq * steps / elapsed, "peak": peak, "losses": losses}


def train_trl(model, batch: int, seq: int, steps: int) -> dict:
    """TRL's SFTTrainer on the same PEFT model, pre-tokenized rows, same batch and steps."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    vocab = model.get_base_model().config.vocab_size
    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(0, vocab, ((steps + 1) * batch, seq), generator=gen).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps + 1,
            max_length=seq, packing=False, bf16=True, logging_steps=1000, save_strategy="no",
            report_to=[], learning_rate=1e-4, dataset_text_field=None,
        )  # fmt: skip
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": rows})
        )
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        out = trainer.train()
        elapsed = time.perf_counter() - start
    # includes the warm-up step: a slight under-estimate of TRL's steady rate
    return {"tok_s": batch * seq * (steps + 1) / elapsed, "peak": torch.cuda.max_memory_allocated(),
            "loss": out.training_loss}  # fmt: skip


def generate_tok_s(model, device: str, batch: int = 16, prompt: int = 64, new: int = 64) -> float:
    model.eval()
    vocab = model.get_base_model().config.vocab_size
    ids = torch.randint(0, vocab, (batch, prompt), generator=torch.Generator().manual_seed(1))
    ids = ids.to(device)
    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
            min_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0,
        )  # fmt: skip
        _sync(device)
    return batch * (out.shape[1] - prompt) / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def mfu(tok_s: float, spec, config, peak_flops: float | None) -> float | None:
    """Model FLOPs per trained token: 2N forward + 2N for the activation gradients (the base is
    frozen: no weight gradients) + 6 per adapter parameter; attention's seq-quadratic part left
    out. Against the GPU's dense bf16 peak."""
    if peak_flops is None:
        return None
    plan = estimate(spec, config, device="cuda")
    flops = 4 * plan.base_params + 6 * plan.trainable_params
    return tok_s * flops / peak_flops


def fsdp_rank(args) -> None:
    """One torchrun rank of the `--fsdp` rows: each model's LoRA, loaded on the CPU and sharded
    onto this rank's device unit by unit; rank 0 writes the rows to $BENCH_FSDP_OUT."""
    from registry.train import distributed, fsdp

    d = distributed.setup()
    cuda = torch.cuda.is_available()
    device = f"cuda:{d.local_rank}" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    rows = []
    for ref in args.models.split(","):
        ckpt = cuda and "8b" in ref
        spec = spec_for(ref, "lora", args.batch, args.seq, ckpt)
        model = peft_wrap(random_llama(ref, "cpu", dtype, args.layers), spec, ckpt)
        head = CausalLMLoss(model)
        fsdp.shard(d, head, model, device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        ours = train_ours(model, args.batch, args.seq, args.steps, device, loss_fn=head)
        (tok_s,) = distributed.sum_all(d, [ours["tok_s"]], device)
        plan = estimate(spec, model.get_base_model().config, device="cuda" if cuda else "cpu",
                        gradient_checkpointing=ckpt, world_size=d.world_size, sharded=True)  # fmt: skip
        rows.append({
            "model": ref + (f" ({args.layers} layers)" if args.layers else ""),
            "method": f"lora fsdp x{d.world_size}", "ckpt": ckpt, "tok_s": tok_s,
            "peak": ours["peak"], "plan": plan.total - plan.overhead, "mfu": None,
        })  # fmt: skip
        del model, head
        _free("cuda" if cuda else "cpu")
    if d.is_main:
        Path(os.environ["BENCH_FSDP_OUT"]).write_text(json.dumps(rows))
    distributed.shutdown()


def fsdp_rows(args, cuda: bool, notes: list[str]) -> list[dict]:
    """The `--fsdp N` rows, from N torchrun ranks (N GPUs, or CPU ranks where there are none)."""
    if cuda and torch.cuda.device_count() < args.fsdp:
        notes.append(f"fsdp x{args.fsdp}: skipped ({torch.cuda.device_count()} GPUs)")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={args.fsdp}", str(Path(__file__).resolve()), *sys.argv[1:]]  # fmt: skip
        proc = subprocess.run(cmd, env={**os.environ, "BENCH_FSDP_OUT": str(out)})
        if proc.returncode != 0 or not out.exists():
            notes.append(f"fsdp x{args.fsdp}: failed (exit {proc.returncode}; see its output)")
            return []
        return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="builtin:random-llama-1b,builtin:random-llama-8b")
    parser.add_argument("--layers", type=int, help="cut every model to N layers (smoke runs)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=450, help="skip cases after this")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-gpu.md")
    parser.add_argument("--fsdp", type=int, default=0, help="also LoRA sharded over N ranks")
    args = parser.parse_args()
    if "BENCH_FSDP_OUT" in os.environ and "RANK" in os.environ:  # a rank of the --fsdp rows
        fsdp_rank(args)
        return 0
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name(0) if cuda else "CPU (smoke run, no CUDA)"
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in name), None) if cuda else None
    dtype = torch.bfloat16 if cuda else torch.float32
    started = time.perf_counter()
    rows, notes = [], []
    methods = ["lora", "qlora"] if cuda else ["lora"]
    for ref in args.models.split(","):
        for method in methods:
            if time.perf_counter() - started > args.budget_s:
                notes.append(f"{ref} {method}: skipped (time budget {args.budget_s:.0f} s spent)")
                continue
            ckpt = cuda and "8b" in ref
            spec = spec_for(ref, method, args.batch, args.seq, ckpt)
            _free(device)
            try:
                base = (
                    qlora_base(ref, device, args.layers) if method == "qlora"
                    else random_llama(ref, device, dtype, args.layers)
                )  # fmt: skip
                model = peft_wrap(base, spec, ckpt)
                _free(device)  # peak from here on: training, not the weight init
                ours = train_ours(model, args.batch, args.seq, args.steps, device)
            except Exception as exc:  # noqa: BLE001 - a bench row records its failure and goes on
                notes.append(f"{ref} {method}: failed: {type(exc).__name__}: {exc}"[:300])
                continue
            config = model.get_base_model().config
            plan = estimate(spec, config, device=device, gradient_checkpointing=ckpt)
            row = {
                "model": ref + (f" ({args.layers} layers)" if args.layers else ""),
                "method": method, "ckpt": ckpt, "tok_s": ours["tok_s"], "peak": ours["peak"],
                "plan": plan.total - plan.overhead, "mfu": mfu(ours["tok_s"], spec, config, peak_flops),
            }  # fmt: skip
            if cuda and method == "lora":
                row["gen_tok_s"] = generate_tok_s(model, device)
            if cuda:
                try:
                    _free(device)
                    row["trl"] = train_trl(model, args.batch, args.seq, args.steps)
                except Exception as exc:  # noqa: BLE001 - TRL missing or its API moved
                    notes.append(f"{ref} {method} TRL: {type(exc).__name__}: {exc}"[:300])
            print(row, flush=True)
            rows.append(row)
            del model, base
    if args.fsdp > 1:
        for row in fsdp_rows(args, cuda, notes):
            print(row, flush=True)
            rows.append(row)
    args.out.write_text(report(name, args, rows, notes))
    print(f"wrote {args.out}")
    return 0 if rows else 1


def report(name: str, args, rows: list[dict], notes: list[str]) -> str:
    def gib(x):
        return "-" if x is None else f"{x / GIB:.2f}"

    lines = [
        "# GPU bench (bench/gpu.py)", "",
        f"Device: {name}. Batch {args.batch} x seq {args.seq}, {args.steps} timed steps after one "
        "warm-up; ticket-json's LoRA settings; random weights at the builtin shapes. Peak = "
        "torch.cuda.max_memory_allocated during training; plan = registry.train.memory's estimate "
        "(without the CUDA-context overhead term).", "",
        "| model | method | ckpt | ours tok/s | TRL tok/s | peak GiB | TRL peak GiB | plan GiB "
        "| plan/peak | MFU | gen tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        trl = r.get("trl") or {}
        ratio = f"{r['plan'] / r['peak']:.2f}" if r["peak"] else "-"
        mfu_s = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['method']} | {'on' if r['ckpt'] else 'off'} | {r['tok_s']:.0f} "
            f"| {trl.get('tok_s', 0):.0f} | {gib(r['peak'])} | {gib(trl.get('peak'))} "
            f"| {gib(r['plan'])} | {ratio} | {mfu_s} | {r.get('gen_tok_s', 0):.0f} |"
        )
    lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
