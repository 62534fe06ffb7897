"""The training loop, in plain sight: `fit` sets up, then steps, validates and checkpoints.

One step = one global batch (`batch_size * grad_accum` examples, the same whatever the process
count): each rank takes its strided share, packed into micro-batches; the loss is the mean over
every trained token of the global batch; gradients cross the ranks once, on the last
micro-batch (DDP all-reduce, or FSDP reduce-scatter: `training.distributed`). Under FSDP every
rank runs the same number of micro-batches (padding with zero-weight ones), as each pass
gathers the sharded layers collectively. fp16 (CUDA GPUs without bf16) scales the loss
(torch.amp.GradScaler) and skips a step whose gradients overflow; bf16 and fp32 need no scaler.
Everything a resumed run needs beyond the weights, optimizer, scheduler and RNG is `LoopState`
(a checkpoint's state.json); the data position is a pure function of the step.

Setup lives beside the loop: the model (model.py), batching (batching.py), frozen-prefix states
(prefix.py), validation (validation.py), checkpoints (checkpoint.py), the finished folder
(output.py), process groups (distributed.py), sharding (fsdp.py).
"""

from __future__ import annotations

import contextlib
import math
import resource
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from registry.core.cache import cache_dir
from registry.errors import InvalidInput
from registry.spec.base_model import default_device, default_dtype, load_tokenizer
from registry.spec.schema import TrainingConfig
from registry.train import batching, checkpoint, distributed, fsdp, prefix
from registry.train.distributed import Dist
from registry.train.loss import CausalLMLoss, lr_factor
from registry.train.model import Trainable, build_model, quiet_transformers
from registry.train.output import write_adapter
from registry.train.planning import TrainingPlan
from registry.train.validation import Validation


@dataclass
class LoopState:
    """The loop's counters and log: what a checkpoint keeps besides tensors (state.json)."""

    step: int = 0  # steps done
    log: list[dict[str, Any]] = field(default_factory=list)  # one entry per step
    tokens: int = 0  # non-pad tokens trained on
    pad_tokens: int = 0
    train_time: float = 0.0  # seconds inside steps
    wall: float = 0.0  # wall seconds of earlier runs of this training (before a resume)
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # validations in a row without a new best (early stopping)
    resumed_from: int | None = None
    base_val: float | None = None  # the base model's validation loss
    data_position: int = 0  # examples consumed; informative only (the order is per step)
    grad_scaler: dict[str, Any] | None = None  # fp16's loss scale and its growth counter
    skipped_steps: int = 0  # fp16 steps skipped for overflowing gradients

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validated(self, value: float | None, step: int, patience: int | None) -> tuple[bool, bool]:
        """Record a validation loss: (a new best?, stop now?)."""
        if value is None:
            return False, False
        if self.best_val is None or value < self.best_val:
            self.best_val, self.best_step, self.bad_evals = value, step, 0
            return True, False
        self.bad_evals += 1
        return False, self.bad_evals >= (patience or math.inf)


@dataclass(frozen=True)
class Schedule:
    """How long the run is and when it validates and checkpoints."""

    total: int  # steps
    warmup: int
    eval_every: int
    save_every: int
    global_batch: int  # examples per step, over all ranks

    @classmethod
    def of(cls, t: TrainingConfig, n_train: int, n_val: int, world_size: int) -> Schedule:
        global_batch = t.batch_size * t.grad_accum
        if global_batch < world_size:
            message = f"batch_size * grad_accum ({global_batch}) < processes ({world_size})"
            raise InvalidInput(message)
        if t.early_stopping_patience and not n_val:
            message = "early_stopping_patience needs data.eval or data.validation_fraction"
            raise InvalidInput(message)
        total = t.max_steps or math.ceil(t.epochs * n_train / global_batch)
        return cls(
            total=total,
            warmup=math.ceil(t.warmup_ratio * total),
            eval_every=t.eval_every or max(1, total // 5),  # ~5 validations per run
            save_every=t.save_every or max(1, math.ceil(total / 5)),  # a checkpoint every ~20%
            global_batch=global_batch,
        )


def fit(
    p: TrainingPlan, work: Path, artifact: Path, d: Dist, *, resume: bool, progress: bool
) -> None:
    """Train `p` to the end (or an early stop); rank 0 writes the adapter into `artifact`."""
    spec, t = p.effective, p.effective.training
    wall_start = time.perf_counter()
    device = distributed.device_for(d, default_device())
    dtype = default_dtype(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    checkpoint.seed_everything(t.seed)
    strategy = fsdp.choose(d, spec, p.base.path, device)  # None | "ddp" | "fsdp"
    sharded = strategy == "fsdp"
    with quiet_transformers(not progress):
        tokenizer = load_tokenizer(p.base)
        train_ex, val_ex, truncated = batching.tokenize_splits(spec, tokenizer)
        model = build_model(spec, p.base, device, dtype, shards=d.world_size if sharded else 1,
                            load_on=fsdp.load_device(strategy, spec.method, device))  # fmt: skip
    sched = Schedule.of(t, len(train_ex), len(val_ex), d.world_size)
    head = CausalLMLoss(model)
    if sharded:
        fsdp.shard(d, head, model, device)
        net = head
    else:
        net = distributed.wrap(d, head, device)
    trainable = Trainable(model)
    scaler = fsdp.grad_scaler(device, dtype, sharded)
    optimizer = torch.optim.AdamW(trainable.params, lr=t.learning_rate, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, sched.total, sched.warmup, t.scheduler)
    )
    batch_args = {"max_seq_len": t.max_seq_len, "rows_per_batch": t.batch_size,
                  "pad_id": tokenizer.pad_token_id, "packing": t.packing}  # fmt: skip
    base_id = p.base.weights_id(spec.quantization)
    # Layers below the lowest adapted one run once per example, not at every step (prefix.py).
    frozen = prefix.prepare(model, spec, base_id, train_ex, val_ex, device=device, dtype=dtype,
                            batch_args=batch_args, world_size=d.world_size,
                            root=cache_dir("prefix"), progress=progress)  # fmt: skip
    bypass = contextlib.ExitStack()
    if frozen is not None:
        bypass.enter_context(prefix.bypass(frozen.layers, frozen.k))
    train_states = frozen.train if frozen else None
    val_batches = batching.micro_batches(val_ex, list(range(len(val_ex))), **batch_args,
                                         states=frozen.val if frozen else None)  # fmt: skip
    val = Validation(head, model, val_batches, d, device, dtype, base_id, lockstep=sharded)

    # -- start, or resume where the last complete checkpoint left off --------------------------
    state, best = LoopState(), None
    last = distributed.broadcast(d, checkpoint.latest(work))
    if last is not None:
        ck = checkpoint.load(last)
        trainable.restore(ck.weights)
        fsdp.load_optimizer_state(model, optimizer, ck.optimizer, trainable.names, sharded)
        scheduler.load_state_dict(ck.scheduler)
        checkpoint.set_rng_state(ck.rng[d.rank % len(ck.rng)])
        state, best = LoopState.from_json(ck.state), ck.best_weights
        state.resumed_from = ck.step
        if scaler is not None and state.grad_scaler:
            scaler.load_state_dict(state.grad_scaler)
    elif resume:
        raise InvalidInput(f"nothing to resume: no checkpoint in {work}", file="--resume")
    else:
        state.base_val = val.base_loss()

    # -- the loop ------------------------------------------------------------------------------
    bar = _progress_bar(sched.total, state.step, progress)
    stop = False
    model.train()
    for step in range(state.step, sched.total):
        t0 = time.perf_counter()
        ids = batching.step_examples(len(train_ex), sched.global_batch, step, t.seed)
        batches = batching.micro_batches(
            train_ex, batching.shard(ids, d.rank, d.world_size), **batch_args, states=train_states
        )
        # The loss is the mean over every trained token of the global batch, whatever the
        # packing, accumulation or process count; DDP and FSDP average gradients over the
        # ranks, hence * world_size.
        (n_targets,) = distributed.sum_all(d, [sum(b.n_targets for b in batches)])
        scale = d.world_size / max(n_targets, 1)
        passes = [(b, scale) for b in batches]
        if sharded:  # lockstep: as many passes as the rank with the most micro-batches
            passes += [(batches[0], 0.0)] * (distributed.max_all(d, len(batches)) - len(batches))
        loss_sum = 0.0
        for k, (b, weight) in enumerate(passes):
            # each rank syncs gradients once per step: on its last micro-batch
            with distributed.gradient_sync(net, last_micro=k == len(passes) - 1):
                loss = net(*b.tensors(device))
                backward(loss * weight, scaler)
            loss_sum += loss.item() if weight else 0.0
        lr = scheduler.get_last_lr()[0]
        grad_norm = optimizer_step(trainable.params, optimizer, scaler, t.max_grad_norm)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        loss_sum, tokens, pads = distributed.sum_all(
            d, [loss_sum, sum(b.tokens for b in batches), sum(b.pad_tokens for b in batches)]
        )
        dt = time.perf_counter() - t0
        state.step = step + 1
        state.tokens += int(tokens)
        state.pad_tokens += int(pads)
        state.train_time += dt
        entry = {"step": step + 1, "loss": loss_sum / max(n_targets, 1), "lr": lr,
                 "grad_norm": grad_norm, "tokens": int(tokens), "tokens_per_s": tokens / dt}  # fmt: skip
        if grad_norm is None:  # fp16 overflow: the scaler skipped this update
            state.skipped_steps += 1
            entry["skipped"] = True
        if scaler is not None:
            state.grad_scaler = scaler.state_dict()
        done = step + 1 == sched.total
        if (step + 1) % sched.eval_every == 0 or done:
            entry["val_loss"] = v = val.loss()
            improved, stop = state.validated(v, step + 1, t.early_stopping_patience)
            if improved and t.early_stopping_patience:  # a copy of the adapter: only when used
                best = trainable.snapshot()
        state.log.append(entry)
        bar.update(1)
        bar.set_postfix(_postfix(entry, state.log), refresh=False)
        if stop:
            break
        if (step + 1) % sched.save_every == 0 and not done:
            rngs = distributed.gather(d, checkpoint.rng_state())
            # whole tensors: under FSDP gathering them is a collective, so every rank takes part
            weights = trainable.snapshot() if d.is_main or sharded else None
            optim = fsdp.optimizer_state(model, optimizer) if sharded else optimizer.state_dict()
            if d.is_main:
                saved = LoopState(**{**state.to_json(),
                                     "wall": state.wall + time.perf_counter() - wall_start,
                                     "data_position": (step + 1) * sched.global_batch})  # fmt: skip
                checkpoint.save(work, step + 1, weights=weights, best_weights=best, rng=rngs,
                                optimizer=optim, scheduler=scheduler.state_dict(),
                                state=saved.to_json())  # fmt: skip
    bar.close()
    bypass.close()

    # -- deliver -------------------------------------------------------------------------------
    final_val, adapter_step = state.log[-1].get("val_loss"), state.step
    if t.early_stopping_patience and best is not None:
        trainable.restore(best)  # deliver the best adapter, not the last one
        final_val, adapter_step = state.best_val, state.best_step
    # FSDP: the adapter's whole tensors, gathered on every rank, for rank 0 to save
    adapter_state = trainable.snapshot() if sharded else None
    if not d.is_main:
        return
    trainable_n, total_params = model.get_nb_trainable_parameters()
    metrics = {
        "steps": state.step,
        "epochs": state.step * sched.global_batch / len(train_ex),
        "tokens": state.tokens,
        "train_tokens_per_s": state.tokens / max(state.train_time, 1e-9),
        "wall_s": state.wall + time.perf_counter() - wall_start,
        "peak_memory_mb": _peak_memory_mb(device),
        "final_train_loss": _tail_mean(state.log),  # mean of the last ~10% of steps (<= 10)
        "final_val_loss": final_val,  # of the delivered adapter
        "best_val_loss": state.best_val,
        "best_step": state.best_step,
        "adapter_step": adapter_step,  # whose weights were delivered
        "base_val_loss": state.base_val,
        "stopped_early": stop,
        "trainable_params": trainable_n,
        "trainable_pct": 100.0 * trainable_n / total_params,
        "pad_fraction": state.pad_tokens / max(state.tokens + state.pad_tokens, 1),
        "train_examples": len(train_ex),
        "val_examples": len(val_ex),
        "truncated_examples": truncated,
        "world_size": d.world_size,
        "distributed": strategy,  # None (one process), "ddp" or "fsdp"
        "skipped_steps": state.skipped_steps,  # fp16 overflows (0 without fp16)
        "frozen_prefix_layers": frozen.k if frozen else 0,  # computed once, not every step
        "frozen_prefix_cached": bool(frozen and frozen.cached),
        "resumed_from_step": state.resumed_from,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
    }
    write_adapter(artifact, model, model_id=p.base.model_id, revision=p.base.revision,
                  log=state.log, provenance=p.provenance(metrics),
                  state_dict=adapter_state)  # fmt: skip
    checkpoint.discard(work)


def backward(loss: torch.Tensor, scaler: Any) -> None:
    """Backpropagate `loss`, scaled first where fp16 needs it (`scaler`, else None)."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def optimizer_step(
    params: list[torch.Tensor], optimizer: torch.optim.Optimizer, scaler: Any, max_norm: float
) -> float | None:
    """Clip and step: the gradient norm before clipping, or None where the scaler found an
    inf or nan in the (scaled) gradients and skipped the update (fp16 only).

    With a scaler the gradients are unscaled before clipping, so `max_norm` bounds the true
    gradient, and the scale backs off after an overflow and grows after a run of clean steps.
    """
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    grad_norm = float(fsdp.full(norm))
    if scaler is None:
        optimizer.step()
        return grad_norm
    before = scaler.get_scale()
    scaler.step(optimizer)  # skips the update when unscale_ found an inf or nan
    scaler.update()
    return None if scaler.get_scale() < before else grad_norm


def _tail_mean(log: list[dict[str, Any]]) -> float:
    tail = [e["loss"] for e in log[-max(1, min(10, len(log) // 10)) :]]
    return sum(tail) / len(tail)


def _postfix(entry: dict[str, Any], log: list[dict[str, Any]]) -> dict[str, str]:
    out = {"loss": f"{entry['loss']:.4f}", "tok/s": f"{entry['tokens_per_s']:.0f}"}
    vals = [e["val_loss"] for e in log if e.get("val_loss") is not None]
    if vals:
        out["val"] = f"{vals[-1]:.4f}"
    return out


def _progress_bar(total: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", desc="train")


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
