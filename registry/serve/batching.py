"""Admission queue of the server: requests wait here, grouped into batches, for the one
generation thread.

Invariants:
- One worker thread takes work out (`next_work`); any thread may `submit` or `call`. Nothing
  here touches the model: the engine (registry/serve/engine.py) runs what it gets, and says
  through `mix` which jobs may share a batch across adapters.
- Every job has a group (the loaded adapter, or None for the base, and the sampling
  settings) and a mix key, given once at `submit` by `mix(job)`: None when its adapter cannot
  share a batch with other adapters (the engine decides: DoRA, which PEFT refuses, among
  others), otherwise its sampling settings. A batch is either jobs of one group (head without
  a mix key) or jobs of one mix key (several adapters and the base, one sampling setting);
  never more than `max_batch`, always in arrival order. Without `mix` (the default) every
  batch holds one group, as before mixed batches existed.
- The oldest waiting job decides the next batch: it is always in it, and what joins it are
  the next jobs in arrival order that may share its batch. So a job waits at most for the
  batches of the jobs that arrived before it; no stream of other requests starves it.
- Control tasks (`call`: attach or detach an adapter) run before the next batch, never during
  one: the model changes only between batches.
- Bounded: more than `max_pending` waiting jobs -> `Overloaded` (the app answers 429).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """Too many requests are waiting; the client should retry later."""


@dataclass
class Job:
    """One completion request as the worker sees it."""

    group: Hashable  # (adapter key or None for the base, sampling settings)
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)  # {} = greedy
    # Called from the worker thread: on_text(delta) while generating (streaming only),
    # on_done(result) or on_error(exc) exactly once at the end.
    on_text: Callable[[str], None] | None = None
    on_done: Callable[[Any], None] = lambda result: None
    on_error: Callable[[BaseException], None] = lambda exc: None
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)
    mix: Hashable | None = None  # set by Batcher.submit: jobs with one mix key share batches


@dataclass
class BatchStats:
    batches: int = 0
    jobs: int = 0
    max_batch: int = 0
    mixed: int = 0  # batches that held more than one group (several adapters, or the base too)
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches

    def record(self, size: int, groups: int = 1) -> None:
        self.batches += 1
        self.jobs += size
        self.max_batch = max(self.max_batch, size)
        self.mixed += groups > 1
        self.sizes[size] = self.sizes.get(size, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "requests": self.jobs,
            "max_batch": self.max_batch,
            "mixed": self.mixed,
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }


class Batcher:
    def __init__(
        self,
        max_batch: int = 8,
        max_pending: int = 256,
        window_s: float = 0.004,
        mix: Callable[[Job], Hashable | None] | None = None,
    ):
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be >= 1")
        self.max_batch, self.max_pending, self.window_s = max_batch, max_pending, window_s
        # job -> its mix key (None: batches with its own group only); the engine sets it
        self.mix = mix
        self._jobs: deque[Job] = deque()
        self._tasks: deque[tuple[Callable[[], Any], Future]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = BatchStats()

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise Overloaded("the server is shutting down")
            if len(self._jobs) >= self.max_pending:
                raise Overloaded(f"{len(self._jobs)} requests are waiting; retry shortly")
            job.mix = self.mix(job) if self.mix is not None else None
            self._jobs.append(job)
            self._cond.notify_all()

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the worker thread before the next batch; its result comes in the Future."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                future.set_exception(RuntimeError("the server is shutting down"))
                return future
            self._tasks.append((fn, future))
            self._cond.notify_all()
        return future

    def pending(self) -> int:
        with self._cond:
            return len(self._jobs)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def next_work(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """("task", (fn, future)) or ("batch", [jobs]); None on timeout or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._tasks:
                    return "task", self._tasks.popleft()
                if self._closed:
                    return None
                self._drop_cancelled()
                if self._jobs:
                    head = self._jobs[0]
                    # A short window lets requests that arrive together share a batch; jobs
                    # that queued up while the previous batch ran do not wait at all.
                    wait = head.arrived + self.window_s - time.monotonic()
                    joins = _joins(head)
                    if wait > 0 and sum(map(joins, self._jobs)) < self.max_batch:
                        self._cond.wait(wait)
                        continue
                    batch = self._take(joins)
                    self.stats.record(len(batch), len({j.group for j in batch}))
                    return "batch", batch
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _drop_cancelled(self) -> None:
        if any(j.cancelled.is_set() for j in self._jobs):
            for job in [j for j in self._jobs if j.cancelled.is_set()]:
                self._jobs.remove(job)
                job.on_error(ConnectionAbortedError("the client went away"))

    def _take(self, joins: Callable[[Job], bool]) -> list[Job]:
        batch, keep = [], deque()
        while self._jobs:
            job = self._jobs.popleft()
            (batch if joins(job) and len(batch) < self.max_batch else keep).append(job)
        self._jobs = keep
        return batch

    def fail_all(self, exc: BaseException) -> None:
        """Shutdown: every waiting job and task gets `exc`."""
        with self._cond:
            jobs, tasks = list(self._jobs), list(self._tasks)
            self._jobs.clear()
            self._tasks.clear()
        for job in jobs:
            job.on_error(exc)
        for _, future in tasks:
            future.set_exception(exc)


def _joins(head: Job) -> Callable[[Job], bool]:
    """Which jobs may share the batch `head` (the oldest waiting job) decides."""
    if head.mix is None:
        return lambda job: job.group == head.group
    return lambda job: job.mix == head.mix
