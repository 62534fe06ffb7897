"""The generation side of the server: one base model with its adapters (an AdapterFleet), one
worker thread, batches from registry/serve/batching.py.

Invariants:
- Only the worker thread touches the model: generation, attaching and detaching adapters
  (those arrive as control tasks and run between batches, so a batch never sees the model
  change under it).
- A batch is one `model.generate` call over left-padded prompts that share one sampling
  setting (greedy unless the request asked for sampling). Rows of one adapter (or of the base,
  adapters disabled) run as `AdapterFleet.generate` runs them: for one request it is the exact
  call the library makes (same prompt text, same tokens, same settings), so the served answer
  equals the library's. Rows of several adapters and the base run in one call through PEFT's
  mixed-batch inference (`adapter_names`, one per row, "__base__" for the base): each row's
  LoRA layers add that row's adapter only, so its answer is the one it gets alone. The names
  reach the layers through hooks that are removed however the call ends (`_rows_on`).
- Only adapters PEFT mixes exactly join mixed batches: plain LoRA on Linear / Embedding layers,
  unmerged (`mix_refusal` says why another is refused: PEFT raises for DoRA, merged adapters,
  MultiheadAttention and target_parameters layers; other LoRA variants and modules_to_save
  are not mixed here either). Such an adapter's requests batch by themselves, as before.
- Each row stops on its own: end of sequence, its own max_tokens, a stop string, or its client
  going away (a StoppingCriteria per row).
- Streamed text is the final text cut into pieces: deltas only ever extend what was sent, and
  their sum equals the non-streamed answer (leading/trailing whitespace stripped as
  AdapterFleet.generate strips it; an incomplete UTF-8 tail is held back).
- The tokenizer is used under one lock: the fast tokenizer is not safe to share across threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from registry.consume import AdapterFleet
from registry.serve.batching import Batcher, Job
from registry.store.pull import PulledAdapter

log = logging.getLogger("registry.serve")

BASE_ROW = "__base__"  # PEFT's adapter_names entry for a row on the base model alone


def mix_refusal(model: Any, key: str) -> str | None:
    """Why adapter `key` of a PeftModel cannot share a batch with other adapters through
    PEFT's `adapter_names`, or None when it can."""
    from peft import LoraConfig
    from peft.tuners.lora import Embedding, Linear, LoraLayer

    config = model.peft_config.get(key)
    if not isinstance(config, LoraConfig):
        return f"a {type(config).__name__} adapter: mixed batches are a LoRA feature"
    if config.use_dora:
        return "DoRA: PEFT refuses adapter_names with DoRA layers"
    if config.modules_to_save or getattr(config, "trainable_token_indices", None):
        return "modules_to_save / trainable tokens: not mixed here (untested)"
    held = 0
    for name, layer in model.named_modules():
        if not isinstance(layer, LoraLayer):
            continue
        if key not in layer.lora_A and key not in layer.lora_embedding_A:
            continue
        held += 1
        if type(layer) not in (Linear, Embedding):
            return f"{type(layer).__name__} layer {name}: no exact mixed-batch forward"
        if key in layer.lora_variant:
            return f"LoRA variant {type(layer.lora_variant[key]).__name__} at {name}"
        if layer.merged:
            return f"merged into the base weights at {name}"
    return None if held else "no LoRA layer holds it"


@contextmanager
def _rows_on(model: Any, names: list[str]) -> Iterator[None]:
    """While generating, every LoRA layer (and modules_to_save wrapper) of `model` gets
    `adapter_names=names`, one adapter per row: what `PeftModel.generate(adapter_names=...)`
    arranges, but exception-safe. PEFT 0.21's own context manager removes its hooks only when
    generation succeeds; after a failed batch (a client callback raising, say) every later
    forward would get the stale names and fail."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import AuxiliaryTrainingWrapper

    def inject(module, args, kwargs):
        kwargs["adapter_names"] = names
        return args, kwargs

    handles = [
        m.register_forward_pre_hook(inject, with_kwargs=True)
        for m in model.modules()
        if isinstance(m, (LoraLayer, AuxiliaryTrainingWrapper))
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class Result:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


class _Row:
    """One request's progress inside a running batch."""

    def __init__(self, job: Job, engine: Engine) -> None:
        self.job, self.engine = job, engine
        self.tokens: list[int] = []
        self.finish: str | None = None
        self.stop_at: int | None = None  # char index of a matched stop string
        self.sent = ""
        self.holdback = max((len(s) for s in job.stop), default=1) - 1

    def step(self, token: int) -> None:
        if self.finish is not None:
            return
        if self.job.cancelled.is_set():
            self.finish = "cancelled"
            return
        if token in self.engine.eos_ids:
            self.finish = "stop"
            return
        self.tokens.append(token)
        if self.job.stop or self.job.on_text is not None:
            text = self.engine.decode(self.tokens).lstrip()
            for stop in self.job.stop:
                at = text.find(stop)
                if at >= 0 and (self.stop_at is None or at < self.stop_at):
                    self.stop_at = at
            if self.stop_at is not None:
                self.finish = "stop"
            elif self.job.on_text is not None:
                self._send(self._visible(text))
        if self.finish is None and len(self.tokens) >= self.job.max_tokens:
            self.finish = "length"

    def _visible(self, text: str) -> str:
        text = text.rstrip("\ufffd")  # an incomplete UTF-8 sequence: wait for its last byte
        if self.job.stop and self.holdback:
            text = text[: max(0, len(text) - self.holdback)]
        return text.rstrip()  # trailing whitespace may be stripped at the end

    def _send(self, visible: str) -> None:
        if len(visible) > len(self.sent) and visible.startswith(self.sent):
            delta, self.sent = visible[len(self.sent) :], visible
            self.job.on_text(delta)

    def result(self, prompt_tokens: int) -> Result:
        text = self.engine.decode(self.tokens).strip()
        if self.stop_at is not None:
            text = text[: self.stop_at].strip()
        if self.job.on_text is not None:
            self._send(text)
        reason = "length" if self.finish in (None, "length") else "stop"
        return Result(text, reason, prompt_tokens, len(self.tokens))


class Engine:
    def __init__(self, fleet: AdapterFleet, batcher: Batcher) -> None:
        self.fleet, self.batcher = fleet, batcher
        self.tokenizer = fleet.tokenizer
        self._tok_lock = threading.Lock()
        config = fleet.model.get_base_model().config
        self.context_len = int(getattr(config, "max_position_embeddings", 2048) or 2048)
        # The ids generate() itself stops on (else a row would end where the library's goes on).
        eos = fleet.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = frozenset([eos] if isinstance(eos, int) else list(eos or []))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # adapter key -> why it batches alone, or None once checked mixable; an unchecked key
        # never mixes (deny until mix_refusal has looked at its layers)
        self._refusals: dict[str, str | None] = {}
        for key in list(fleet.adapters):
            self._check_mix(key)
        batcher.mix = self.mix_key

    # ---- mixed batches ----

    @property
    def solo(self) -> dict[str, str]:
        """Adapter key -> why it batches alone."""
        return {key: why for key, why in self._refusals.items() if why is not None}

    def _mixable(self, key: str) -> bool:
        return key in self._refusals and self._refusals[key] is None

    def _check_mix(self, key: str) -> None:
        """Worker thread (or before it starts): record whether `key` may join mixed batches."""
        reason = self._refusals[key] = mix_refusal(self.fleet.model, key)
        if reason is not None:
            pulled = self.fleet.adapters[key]
            log.info("%s@%s batches alone: %s", pulled.name, pulled.version, reason)

    def mix_key(self, job: Job) -> Hashable | None:
        """The batcher's `mix`: jobs with one key (their sampling settings) may share a batch
        across adapters; None keeps a job in batches of its own group."""
        key, sampling = job.group
        if key is not None and not self._mixable(key):
            return None
        return ("mix", sampling)

    # ---- tokenizer (any thread) ----

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        with self._tok_lock:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_text(self, prompt: str) -> list[int]:
        with self._tok_lock:
            return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def decode(self, tokens: list[int]) -> str:
        with self._tok_lock:
            return self.tokenizer.decode(tokens, skip_special_tokens=True)

    # ---- the worker ----

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="registry-serve-gen", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.batcher.close()
        if self._thread is not None:
            self._thread.join(timeout)
        self.batcher.fail_all(RuntimeError("the server is shutting down"))

    def attach(self, pulled: PulledAdapter, key: str) -> Future:
        def run() -> None:
            self.fleet.attach(pulled, key)
            self._check_mix(key)  # before the slot is routed: its first job sees the answer

        return self.batcher.call(run)

    def detach(self, key: str) -> Future:
        def run() -> bool:
            if key not in self.fleet.adapters or len(self.fleet.adapters) == 1:
                return False  # the last adapter stays: PEFT needs one
            self.fleet.detach(key)
            self._refusals.pop(key, None)
            return True

        return self.batcher.call(run)

    def _loop(self) -> None:
        while not self._stop.is_set():
            work = self.batcher.next_work(timeout=0.5)
            if work is None:
                continue
            kind, item = work
            if kind == "task":
                fn, future = item
                try:
                    future.set_result(fn())
                except BaseException as exc:  # reported to the caller, the worker goes on
                    future.set_exception(exc)
            else:
                self._run_batch(item)

    def _run_batch(self, jobs: list[Job]) -> None:
        try:
            results = self.generate(jobs)
        except Exception as exc:
            log.exception("generation failed for a batch of %d", len(jobs))
            for job in jobs:
                job.on_error(exc)
            return
        for job, result in zip(jobs, results, strict=True):
            job.on_done(result)

    def generate(self, jobs: list[Job]) -> list[Result]:
        """Run one batch (one group, or one mix key) to the end; worker thread only."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        keys = [job.group[0] for job in jobs]
        model = self.fleet.model
        for k in set(keys) - {None}:
            if k not in self.fleet.adapters:
                raise RuntimeError(f"adapter slot {k} was unloaded before its batch ran")
        key, mixed = keys[0], nullcontext()
        if len(set(keys)) > 1:  # rows of several adapters (and maybe the base): PEFT mixes them
            refused = {k for k in keys if k is not None and not self._mixable(k)}
            if refused:
                raise RuntimeError(f"adapter slots {sorted(refused)} cannot share a batch")
            mixed = _rows_on(model, [BASE_ROW if k is None else k for k in keys])
            key = next(k for k in keys if k is not None)  # active: a plain LoRA one
        if key is not None:
            self.fleet.use(key)
        width = max(len(j.prompt_ids) for j in jobs)
        ids = [[self.pad_id] * (width - len(j.prompt_ids)) + j.prompt_ids for j in jobs]
        mask = [[0] * (width - len(j.prompt_ids)) + [1] * len(j.prompt_ids) for j in jobs]
        rows = [_Row(job, self) for job in jobs]

        class PerRow(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                last = input_ids[:, -1].tolist()
                for row, token in zip(rows, last, strict=True):
                    row.step(token)
                return torch.tensor([r.finish is not None for r in rows], device=input_ids.device)

        sampling = jobs[0].sampling
        options: dict[str, Any] = {"do_sample": False}
        if sampling.get("temperature"):
            options = {"do_sample": True, "temperature": sampling["temperature"]}
            if sampling.get("top_p") is not None:
                options["top_p"] = sampling["top_p"]
            if sampling.get("seed") is not None:
                torch.manual_seed(sampling["seed"])
        device = model.device
        adapters = model.disable_adapter() if key is None else nullcontext()
        with torch.no_grad(), adapters, mixed:
            model.generate(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=torch.tensor(mask, device=device),
                max_new_tokens=max(j.max_tokens for j in jobs),
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([PerRow()]),
                **options,
            )
        return [row.result(len(job.prompt_ids)) for row, job in zip(rows, jobs, strict=True)]
