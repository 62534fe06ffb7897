"""The generation side of the server: one base model with its adapters (an AdapterFleet), one
worker thread, batches from registry/serve/batching.py.

Invariants:
- Only the worker thread touches the model: generation, attaching and detaching adapters
  (those arrive as control tasks and run between batches, so a batch never sees the model
  change under it).
- A batch is one `model.generate` call over left-padded prompts of one adapter (or of the base,
  adapters disabled), greedy unless the request asked for sampling. For one request it is the
  exact call `AdapterFleet.generate` makes (same prompt text, same tokens, same settings), so
  the served answer equals the library's. Each row stops on its own: end of sequence, its own
  max_tokens, a stop string, or its client going away (a StoppingCriteria per row).
- Streamed text is the final text cut into pieces: deltas only ever extend what was sent, and
  their sum equals the non-streamed answer (leading/trailing whitespace stripped as
  AdapterFleet.generate strips it; an incomplete UTF-8 tail is held back).
- The tokenizer is used under one lock: the fast tokenizer is not safe to share across threads.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from registry.consume import AdapterFleet
from registry.serve.batching import Batcher, Job
from registry.store.pull import PulledAdapter

log = logging.getLogger("registry.serve")


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
        return self.batcher.call(lambda: self.fleet.attach(pulled, key))

    def detach(self, key: str) -> Future:
        def run() -> bool:
            if key not in self.fleet.adapters or len(self.fleet.adapters) == 1:
                return False  # the last adapter stays: PEFT needs one
            self.fleet.detach(key)
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
        """Run one batch (all jobs of one group) to the end; worker thread only."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        key, _ = jobs[0].group
        model = self.fleet.model
        if key is not None:
            if key not in self.fleet.adapters:
                raise RuntimeError(f"adapter slot {key} was unloaded before its batch ran")
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
        with torch.no_grad(), model.disable_adapter() if key is None else nullcontext():
            model.generate(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=torch.tensor(mask, device=device),
                max_new_tokens=max(j.max_tokens for j in jobs),
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([PerRow()]),
                **options,
            )
        return [row.result(len(job.prompt_ids)) for row, job in zip(rows, jobs, strict=True)]
