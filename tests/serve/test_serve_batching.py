"""The admission queue: batches of one group (or of one mix key, across groups), in arrival
order, the oldest job first, bounded, tasks first."""

from __future__ import annotations

import threading

import pytest

from registry.serve.batching import Batcher, Job, Overloaded


def job(group: str, n: int) -> Job:
    return Job(group=group, prompt_ids=[n], max_tokens=1)


def test_batches_hold_one_group_in_arrival_order_and_take_turns():
    batcher = Batcher(max_batch=2, window_s=0)
    for i, group in enumerate("aabab"):
        batcher.submit(job(group, i))
    batches = [batcher.next_work(timeout=0)[1] for _ in range(3)]
    assert [[j.prompt_ids[0] for j in b] for b in batches] == [[0, 1], [2, 4], [3]]
    assert batcher.next_work(timeout=0) is None
    assert batcher.stats.as_dict() == {
        "batches": 3, "requests": 5, "max_batch": 2, "mixed": 0, "sizes": {"1": 1, "2": 2},
    }  # fmt: skip


def test_jobs_of_one_mix_key_share_a_batch_across_groups_and_the_oldest_leads():
    # groups are (adapter, sampling); "d" cannot mix (as a DoRA adapter), the others can
    def mix(j: Job):
        return None if j.group[0] == "d" else ("mix", j.group[1])

    batcher = Batcher(max_batch=3, window_s=0, mix=mix)
    order = [("a", "g"), ("d", "g"), ("b", "g"), (None, "g"), ("a", "s"), ("d", "g"), ("b", "g")]
    for i, group in enumerate(order):
        batcher.submit(job(group, i))
    batches = []
    while (work := batcher.next_work(timeout=0)) is not None:
        batches.append([j.prompt_ids[0] for j in work[1]])
    # a, b and the base greedy (at most 3); d's own; the sampled a; the b left over
    assert batches == [[0, 2, 3], [1, 5], [4], [6]]
    stats = batcher.stats.as_dict()
    assert stats["batches"] == 4 and stats["mixed"] == 1 and stats["max_batch"] == 3


def test_a_window_waits_for_jobs_that_may_join_across_groups():
    batcher = Batcher(max_batch=2, window_s=5.0, mix=lambda j: "greedy")
    batcher.submit(job("a", 0))
    batcher.submit(job("b", 1))  # another group, same mix key: the batch is full, no waiting
    assert [j.prompt_ids[0] for j in batcher.next_work(timeout=0)[1]] == [0, 1]


def test_control_tasks_run_before_the_next_batch():
    batcher = Batcher(window_s=0)
    batcher.submit(job("a", 0))
    future = batcher.call(lambda: "attached")
    kind, (fn, fut) = batcher.next_work(timeout=0)
    assert kind == "task" and fut is future
    fut.set_result(fn())
    assert future.result() == "attached"
    assert batcher.next_work(timeout=0)[0] == "batch"


def test_a_full_queue_refuses_and_cancelled_jobs_are_dropped():
    batcher = Batcher(max_pending=2, window_s=0)
    errors = []
    first, second = job("a", 0), job("a", 1)
    first.on_error = errors.append
    batcher.submit(first)
    batcher.submit(second)
    with pytest.raises(Overloaded):
        batcher.submit(job("a", 2))
    first.cancelled.set()
    kind, batch = batcher.next_work(timeout=0)
    assert batch == [second] and len(errors) == 1


def test_a_short_window_gathers_requests_that_arrive_together():
    batcher = Batcher(max_batch=8, window_s=5.0)  # long window: only a full batch ends it early
    for i in range(8):
        batcher.submit(job("a", i))
    assert len(batcher.next_work(timeout=0)[1]) == 8  # full: no waiting for the window


def test_close_wakes_the_worker_and_fails_what_waits():
    batcher = Batcher()
    out = []
    waiter = threading.Thread(target=lambda: out.append(batcher.next_work(timeout=30)))
    waiter.start()
    pending = job("a", 0)
    errors = []
    pending.on_error = errors.append
    batcher.close()
    waiter.join(10)
    assert out == [None]
    with pytest.raises(Overloaded):
        batcher.submit(pending)
    batcher.fail_all(RuntimeError("shutting down"))
