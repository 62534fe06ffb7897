"""Train a LoRA / QLoRA / DoRA adapter from a spec; the loop is kept in plain sight.

    train(spec) = plan (overrides -> effective spec -> fingerprint)
                  -> artifact cache hit? return it at once
                  -> fit under a per-fingerprint lock, resuming from the last checkpoint
                  -> write the adapter atomically into cache/artifacts/<fingerprint>
                  -> copy it to `out` (registry.json naming this spec's version)

Batching lives in registry/train/batching.py, checkpoints and output folders in registry/train/checkpoint.py,
process groups in registry/train/distributed.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from registry.errors import InvalidInput, Problem
from registry.spec.base_model import (
    ResolvedModel,
    cache_dir,
    default_device,
    default_dtype,
    load_base_model,
    load_tokenizer,
    resolve_base_model,
)
from registry.spec.fingerprint import dataset_hashes, fingerprint
from registry.spec.schema import Spec
from registry.train import batching, checkpoint, distributed, prefix
from registry.train.distributed import Dist
from registry.train.loss import CausalLMLoss, base_val_key, lr_factor, recall, remember


@dataclass
class TrainResult:
    adapter_dir: Path
    fingerprint: str
    cached: bool  # True: an adapter with this fingerprint existed, nothing was trained
    metrics: dict[str, Any]  # registry.json "training"


@dataclass(frozen=True)
class Plan:
    spec: Spec  # as written
    effective: Spec  # overrides applied: what is trained and fingerprinted
    overrides: dict[str, Any]  # recorded in registry.json; publish refuses such outputs
    base: ResolvedModel
    datasets: dict[str, str]
    fingerprint: str

    @property
    def key(self) -> str:
        return self.fingerprint.split(":", 1)[1]


def plan(
    spec: Spec,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    base_model: str | None = None,
) -> Plan:
    """Apply overrides and fingerprint the result. An override that changes nothing is dropped."""
    wanted = {"training.max_steps": max_steps, "training.seed": seed, "base_model": base_model}
    changes = {k: v for k, v in wanted.items() if v is not None}
    try:
        effective = spec.with_overrides(**changes) if changes else spec
    except ValidationError as exc:
        problems = [
            Problem("<overrides>", e["msg"], field=".".join(map(str, e["loc"])))
            for e in exc.errors()
        ]
        raise InvalidInput(problems) from None
    before, after = spec.model_dump(mode="json"), effective.model_dump(mode="json")
    overrides: dict[str, Any] = {}
    length = ("max_steps", "epochs")
    if [after["training"][k] for k in length] != [before["training"][k] for k in length]:
        overrides["max_steps"] = max_steps
    if after["training"]["seed"] != before["training"]["seed"]:
        overrides["seed"] = seed
    if after["base_model"] != before["base_model"]:
        overrides["base_model"] = base_model
    batching.load_splits(effective)  # bad data is InvalidInput now, before loading any model
    base = resolve_base_model(effective.base_model)
    datasets = dataset_hashes(effective)
    return Plan(spec, effective, overrides, base, datasets, fingerprint(effective, base, datasets))


def artifact_dir(fp: str) -> Path:
    """Where the adapter of fingerprint `fp` is cached once trained."""
    return cache_dir() / "artifacts" / fp.split(":", 1)[-1]


def train(
    spec: Spec,
    out: Path | None = None,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    base_model: str | None = None,
    resume: bool = False,
    progress: bool = True,
    nproc: int = 1,
) -> TrainResult:
    """Train (or reuse) the adapter `spec` describes; returns the folder holding it.

    Without `out` the folder is the shared cache entry. Checkpoints live in
    cache/work/<fingerprint>: a run finding complete ones there continues from the last (the
    fingerprint guarantees it is the same run); `resume=True` insists there is one. `nproc > 1`
    runs data-parallel through torchrun.
    """
    p = plan(spec, max_steps=max_steps, seed=seed, base_model=base_model)
    artifact = artifact_dir(p.fingerprint)
    d = distributed.setup()
    if nproc > 1 and not d.enabled:
        cached = checkpoint.is_complete(artifact)
        if not cached:
            distributed.launch(nproc, spec.model_dump_json(), root=spec.root, spec_path=spec.path,
                               max_steps=max_steps, seed=seed, base_model=base_model,
                               resume=resume, progress=progress)  # fmt: skip
        return _deliver(p, artifact, out, cached, d)
    cached = distributed.broadcast(d, checkpoint.is_complete(artifact))
    if not cached:
        work = cache_dir() / "work" / p.key
        lock = checkpoint.locked(work.with_name(f"{p.key}.lock")) if d.is_main else None
        with lock or contextlib.nullcontext():
            # another process may have finished this fingerprint while we waited for the lock
            cached = distributed.broadcast(d, checkpoint.is_complete(artifact))
            if not cached:
                _fit(p, work, artifact, d, resume=resume, progress=progress and d.is_main)
        distributed.barrier(d)
    return _deliver(p, artifact, out, cached, d)


def _fit(p: Plan, work: Path, artifact: Path, d: Dist, *, resume: bool, progress: bool) -> None:
    spec, t = p.effective, p.effective.training
    wall_start = time.perf_counter()
    device = distributed.device_for(d, default_device())
    dtype = default_dtype(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    checkpoint.seed_everything(t.seed)
    with _quiet_transformers(not progress):
        tokenizer = load_tokenizer(p.base)
        train_ex, val_ex, truncated = batching.tokenize_splits(spec, tokenizer)
        model = _build_model(spec, p.base, device, dtype)
    head = CausalLMLoss(model)
    ddp = distributed.wrap(d, head, device)
    named = [(n, prm) for n, prm in model.named_parameters() if prm.requires_grad]
    params = [prm for _, prm in named]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)

    global_batch = t.batch_size * t.grad_accum
    if global_batch < d.world_size:
        raise InvalidInput(f"batch_size * grad_accum ({global_batch}) < processes ({d.world_size})")
    if t.early_stopping_patience and not val_ex:
        raise InvalidInput("early_stopping_patience needs data.eval or data.validation_fraction")
    total = t.max_steps or math.ceil(t.epochs * len(train_ex) / global_batch)
    warmup = math.ceil(t.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, t.scheduler)
    )
    eval_every = t.eval_every or max(1, total // 5)  # ~5 validations per run
    save_every = t.save_every or max(1, math.ceil(total / 5))  # a checkpoint every ~20%
    batch_args = {"max_seq_len": t.max_seq_len, "rows_per_batch": t.batch_size,
                  "pad_id": tokenizer.pad_token_id, "packing": t.packing}  # fmt: skip
    base_id = p.base.weights_id(spec.quantization)
    # Layers below the lowest adapted one run once per example, not at every step (prefix.py).
    frozen = prefix.prepare(model, spec, base_id, train_ex, val_ex, device=device, dtype=dtype,
                            batch_args=batch_args, world_size=d.world_size,
                            root=cache_dir() / "prefix", progress=progress)  # fmt: skip
    bypass = contextlib.ExitStack()
    if frozen is not None:
        bypass.enter_context(prefix.bypass(frozen.layers, frozen.k))
    train_states = frozen.train if frozen else None
    val_batches = batching.micro_batches(val_ex, list(range(len(val_ex))), **batch_args,
                                         states=frozen.val if frozen else None)  # fmt: skip
    my_val = val_batches[d.rank :: d.world_size]

    def val_loss(adapter: bool = True) -> float | None:
        if not val_batches:
            return None
        head.eval()
        with torch.no_grad(), contextlib.nullcontext() if adapter else model.disable_adapter():
            loss = sum(head(*b.tensors(device)).item() for b in my_val)
        head.train()
        loss, count = distributed.sum_all(d, [loss, sum(b.n_targets for b in my_val)])
        return loss / max(count, 1)

    def base_val_loss() -> float | None:
        """What the adapter must beat; the same for every adapter on this base and data."""
        if not val_batches:
            return None
        key = base_val_key(base_id, device, dtype, val_batches)
        # rank 0 decides for all: every rank must join the validation pass, or none
        value = distributed.broadcast(d, recall(cache_dir() / "val-loss", key))
        if value is None:
            value = val_loss(adapter=False)
            if d.is_main:
                remember(cache_dir() / "val-loss", key, value)
        return value

    def weights() -> dict[str, torch.Tensor]:
        return {n: prm.detach().clone() for n, prm in named}

    def load_weights(tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, prm in named:
                prm.copy_(tensors[n])

    # -- start, or resume where the last complete checkpoint left off --------------------------
    s: dict[str, Any] = {"step": 0, "log": [], "tokens": 0, "pad_tokens": 0, "train_time": 0.0,
                         "wall": 0.0, "best_val": None, "best_step": None, "bad_evals": 0,
                         "resumed_from": None}  # fmt: skip
    best: dict[str, torch.Tensor] | None = None
    last = distributed.broadcast(d, checkpoint.latest(work))
    if last is not None:
        ck = checkpoint.load(last)
        load_weights(ck.weights)
        optimizer.load_state_dict(ck.optimizer)
        scheduler.load_state_dict(ck.scheduler)
        checkpoint.set_rng_state(ck.rng[d.rank % len(ck.rng)])
        s, best = {**ck.state, "resumed_from": ck.step}, ck.best_weights
    elif resume:
        raise InvalidInput(f"nothing to resume: no checkpoint in {work}", file="--resume")
    else:
        s["base_val"] = base_val_loss()

    bar = _progress_bar(total, s["step"], progress)
    stop = False
    model.train()
    for step in range(s["step"], total):
        t0 = time.perf_counter()
        ids = batching.step_examples(len(train_ex), global_batch, step, t.seed)
        batches = batching.micro_batches(
            train_ex, batching.shard(ids, d.rank, d.world_size), **batch_args, states=train_states
        )
        # The loss is the mean over every trained token of the global batch, whatever the
        # packing, accumulation or process count; DDP averages gradients, hence * world_size.
        (n_targets,) = distributed.sum_all(d, [sum(b.n_targets for b in batches)])
        scale = d.world_size / max(n_targets, 1)
        loss_sum = 0.0
        for k, b in enumerate(batches):
            # each rank all-reduces gradients once per step: on its last micro-batch
            last_micro = k == len(batches) - 1
            with contextlib.nullcontext() if last_micro or not d.enabled else ddp.no_sync():
                loss = ddp(*b.tensors(device))
                (loss * scale).backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm).item()
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        loss_sum, tokens, pads = distributed.sum_all(
            d, [loss_sum, sum(b.tokens for b in batches), sum(b.pad_tokens for b in batches)]
        )
        dt = time.perf_counter() - t0
        s["step"] = step + 1
        s["tokens"] += int(tokens)
        s["pad_tokens"] += int(pads)
        s["train_time"] += dt
        entry = {"step": step + 1, "loss": loss_sum / max(n_targets, 1), "lr": lr,
                 "grad_norm": grad_norm, "tokens": int(tokens), "tokens_per_s": tokens / dt}  # fmt: skip
        done = step + 1 == total
        if (step + 1) % eval_every == 0 or done:
            entry["val_loss"] = v = val_loss()
            if v is not None and (s["best_val"] is None or v < s["best_val"]):
                s["best_val"], s["best_step"], s["bad_evals"] = v, step + 1, 0
                if t.early_stopping_patience:  # a copy of the adapter: only when it is used
                    best = weights()
            elif v is not None:
                s["bad_evals"] += 1
                stop = s["bad_evals"] >= (t.early_stopping_patience or math.inf)
        s["log"].append(entry)
        bar.update(1)
        bar.set_postfix(_postfix(entry, s["log"]), refresh=False)
        if stop:
            break
        if (step + 1) % save_every == 0 and not done:
            rngs = distributed.gather(d, checkpoint.rng_state())
            if d.is_main:
                # data_position is informative: the order is a pure function of the step
                state = {**s, "wall": s["wall"] + time.perf_counter() - wall_start,
                         "data_position": (step + 1) * global_batch}  # fmt: skip
                checkpoint.save(work, step + 1, weights=weights(), best_weights=best, rng=rngs,
                                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                state=state)  # fmt: skip
    bar.close()
    bypass.close()

    final_val, adapter_step = s["log"][-1].get("val_loss"), s["step"]
    if t.early_stopping_patience and best is not None:
        load_weights(best)  # deliver the best adapter, not the last one
        final_val, adapter_step = s["best_val"], s["best_step"]
    if not d.is_main:
        return
    tail = [e["loss"] for e in s["log"][-max(1, min(10, len(s["log"]) // 10)) :]]
    trainable, total_params = model.get_nb_trainable_parameters()
    metrics = {
        "steps": s["step"],
        "epochs": s["step"] * global_batch / len(train_ex),
        "tokens": s["tokens"],
        "train_tokens_per_s": s["tokens"] / max(s["train_time"], 1e-9),
        "wall_s": s["wall"] + time.perf_counter() - wall_start,
        "peak_memory_mb": _peak_memory_mb(device),
        "final_train_loss": sum(tail) / len(tail),  # mean of the last ~10% of steps (<= 10)
        "final_val_loss": final_val,  # of the delivered adapter
        "best_val_loss": s["best_val"],
        "best_step": s["best_step"],
        "adapter_step": adapter_step,  # whose weights were delivered
        "base_val_loss": s.get("base_val"),
        "stopped_early": stop,
        "trainable_params": trainable,
        "trainable_pct": 100.0 * trainable / total_params,
        "pad_fraction": s["pad_tokens"] / max(s["tokens"] + s["pad_tokens"], 1),
        "train_examples": len(train_ex),
        "val_examples": len(val_ex),
        "truncated_examples": truncated,
        "world_size": d.world_size,
        "frozen_prefix_layers": frozen.k if frozen else 0,  # computed once, not every step
        "frozen_prefix_cached": bool(frozen and frozen.cached),
        "resumed_from_step": s["resumed_from"],
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
    }
    checkpoint.write_adapter(artifact, model, model_id=p.base.model_id, revision=p.base.revision,
                             log=s["log"], provenance=_provenance(p, metrics))  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


def _build_model(spec: Spec, base: ResolvedModel, device: str, dtype: torch.dtype):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = load_base_model(base, quantization=spec.quantization, device=device, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecations inside peft
        if spec.method == "qlora":
            # Casts norms/embeddings to fp32 for stable 4-bit training. Activation checkpointing
            # is the QLoRA memory recipe on GPUs; on CPUs memory is rarely the limit and it
            # costs ~30% more compute.
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=device.startswith("cuda"),
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        lora = spec.lora
        n_layers = model.config.num_hidden_layers
        if lora.layers_to_transform and max(lora.layers_to_transform) >= n_layers:
            message = (
                f"{base.ref} has layers 0..{n_layers - 1}, not {max(lora.layers_to_transform)}"
            )
            raise InvalidInput([spec.problem("lora.layers_to_transform", message)])
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            bias=lora.bias,
            use_rslora=lora.use_rslora,
            layers_to_transform=lora.layers_to_transform,
            use_dora=spec.method == "dora",
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(spec.training.seed)  # LoRA's random init: same seed, same start
        return get_peft_model(model, config)


def _provenance(p: Plan, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": p.spec.name,
        "version": p.spec.version,
        "fingerprint": p.fingerprint,
        "base_model": p.base.provenance(),
        "datasets": p.datasets,
        "spec": p.spec.model_dump(mode="json"),
        "git_commit": checkpoint.git_commit(p.spec.path.parent if p.spec.path else p.spec.root),
        "packages": checkpoint.package_versions(),
        "overrides": p.overrides,
        "training": metrics,
    }


def _deliver(p: Plan, artifact: Path, out: Path | None, cached: bool, d: Dist) -> TrainResult:
    """The cached adapter, or a copy in `out` whose registry.json names this spec's version.

    A cache hit may come from another version of the spec (same weights-relevant content):
    name, version, spec, git commit and overrides are this call's; training metrics are kept.
    """
    if out is None or not d.is_main:
        info = json.loads((artifact / checkpoint.PROVENANCE).read_text())
        return TrainResult(artifact, p.fingerprint, cached, info["training"])
    now = _provenance(p, {})
    updates = {k: now[k] for k in ("name", "version", "spec", "git_commit", "overrides")}
    info = checkpoint.copy_adapter(artifact, Path(out), updates)
    return TrainResult(Path(out), p.fingerprint, cached, info["training"])


def _postfix(entry: dict[str, Any], log: list[dict[str, Any]]) -> dict[str, str]:
    out = {"loss": f"{entry['loss']:.4f}", "tok/s": f"{entry['tokens_per_s']:.0f}"}
    vals = [e["val_loss"] for e in log if e.get("val_loss") is not None]
    if vals:
        out["val"] = f"{vals[-1]:.4f}"
    return out


def _progress_bar(total: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", desc="train")


@contextlib.contextmanager
def _quiet_transformers(quiet: bool):
    """Hide transformers' weight-loading bars when the caller asked for silence."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was:
            hf_logging.enable_progress_bar()


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
