"""Mixed-adapter batches, end to end: real servers on 127.0.0.1 in a thread, the real `openai`
client. Requests to different adapters and the base share one `model.generate` (PEFT's
per-row `adapter_names`) and each still answers exactly what AdapterFleet.generate answers for
it alone; an adapter PEFT cannot mix (DoRA) batches by itself and answers as well.

Batches are made deterministic with `held`: the generation thread waits in a control task
until every request has queued, so what shares a batch follows from the rules alone."""

from __future__ import annotations

import threading

import pytest
import torch
from servekit import PROMPTS, client, get_json, held, in_thread, make_store, reference, wait_for

from registry.consume import AdapterFleet
from registry.serve.batching import Job
from registry.serve.server import ServeOptions
from registry.store.pull import pull

BASE = "registry/tiny-llama"


def ask(url: str, kind: str, model: str, prompt: str) -> tuple[str, str]:
    """(answer text, the version that answered) of one request."""
    c = client(url)
    if kind == "text":
        r = c.completions.create(model=model, prompt=prompt, max_tokens=8)
        return r.choices[0].text, r.model
    if kind == "hot":  # sampled, not greedy: another sampling setting
        r = c.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=4,
            temperature=0.7,
            seed=1,
        )
        return r.choices[0].message.content, r.model
    if kind == "stream":
        chunks = list(
            c.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=8,
                stream=True,
            )
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        return text, chunks[0].model
    r = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=8
    )
    return r.choices[0].message.content, r.model


def queued_together(url: str, server, asks: list[tuple[str, str, str]]) -> tuple[list, dict]:
    """Send every request at once while the generation thread is held, let it go once all
    wait; the answers in order, and how /health's batch counters moved."""
    health = url.removesuffix("/v1") + "/health"
    before = get_json(health)["batching"]
    out: list = [None] * len(asks)

    def one(i: int) -> None:
        try:
            out[i] = ask(url, *asks[i])
        except Exception as exc:  # noqa: BLE001  (shown by the assertion below)
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(asks))]
    with held(server):
        for t in threads:
            t.start()
        wait_for(lambda: server.engine.batcher.pending() == len(asks), 60, "requests to queue")
    for t in threads:
        t.join(120)
    after = get_json(health)["batching"]
    assert not [o for o in out if not isinstance(o, tuple)], out
    moved = {k: after[k] - before[k] for k in ("batches", "requests", "mixed")}
    sizes = {
        size: after["sizes"].get(size, 0) - before["sizes"].get(size, 0) for size in after["sizes"]
    }
    moved["sizes"] = {k: v for k, v in sizes.items() if v}
    return out, moved


@pytest.fixture(scope="module")
def two(tmp_path_factory, tiny_model):
    """One server on alpha and beta (plain LoRA), the library's answers for each and the base."""
    tmp = tmp_path_factory.mktemp("mixed")
    store = make_store(
        tmp,
        tiny_model,
        [("alpha", "1.0.0"), ("beta", "1.0.0")],
        {"alpha": "1.0.0", "beta": "1.0.0"},
    )
    expected = reference(store, ["alpha@1.0.0", "beta@1.0.0"])
    assert len({str(sorted(v.items())) for v in expected.values()}) == 3  # told apart
    options = ServeOptions(
        store=store.url, adapters=["alpha", "beta"], poll_interval=60, max_batch=16
    )
    with in_thread(options) as (url, server):
        yield {"url": url, "server": server, "expected": expected}


def check(asks, answers, expected, refs) -> None:
    for (kind, model, prompt), (text, served) in zip(asks, answers, strict=True):
        ref = refs[model]
        key = f"{'text' if kind == 'text' else 'chat'}:{prompt}"
        assert text == expected[ref][key], (kind, model, prompt)
        assert served == (BASE if ref == "base" else ref)


REFS = {"alpha": "alpha@1.0.0", "beta": "beta@1.0.0", BASE: "base"}


def test_two_adapters_and_the_base_share_one_batch_and_answer_as_alone(two):
    url, server = two["url"], two["server"]
    assert server.engine.solo == {}  # plain LoRA: every adapter may mix
    asks = [(kind, model, prompt) for model in REFS for kind in ("chat", "text")
            for prompt in PROMPTS]  # fmt: skip
    asks.append(("stream", "beta", PROMPTS[1]))
    answers, moved = queued_together(url, server, asks)
    # 13 requests, 3 names, one sampling setting (greedy): one generate call for all
    assert moved == {"batches": 1, "requests": 13, "mixed": 1, "sizes": {"13": 1}}
    check(asks, answers, two["expected"], REFS)


def test_sampling_settings_split_batches_but_adapters_do_not(two):
    asks = [(kind, model, "dog") for kind in ("chat", "hot") for model in ("alpha", "beta")]
    answers, moved = queued_together(two["url"], two["server"], asks)
    # greedy and sampled (temperature 0.7, seed 1) never share a batch; both adapters do
    assert moved == {"batches": 2, "requests": 4, "mixed": 2, "sizes": {"2": 2}}
    assert [served for _, served in answers] == ["alpha@1.0.0", "beta@1.0.0"] * 2
    check(asks[:2], answers[:2], two["expected"], REFS)


def test_a_failed_mixed_batch_leaves_the_model_as_it_was(two):
    url, engine = two["url"], two["server"].engine
    alpha = next(k for k, p in engine.fleet.adapters.items() if p.name == "alpha")

    def boom(text: str) -> None:
        raise RuntimeError("a client callback failed")

    ids = engine.encode_text("dog")
    rows = [
        Job(group=(alpha, ()), prompt_ids=ids, max_tokens=4, on_text=boom),
        Job(group=(None, ()), prompt_ids=ids, max_tokens=4),
    ]
    with pytest.raises(RuntimeError, match="callback failed"):
        engine.batcher.call(lambda: engine.generate(rows)).result(60)
    # no stale per-row adapter names left behind: one adapter alone, and mixed, answer right
    assert ask(url, "text", "alpha", "dog") == (two["expected"]["alpha@1.0.0"]["text:dog"],
                                                "alpha@1.0.0")  # fmt: skip
    asks = [("chat", model, "dog") for model in REFS]
    answers, moved = queued_together(url, two["server"], asks)
    assert moved["mixed"] == 1
    check(asks, answers, two["expected"], REFS)


def test_an_adapter_peft_cannot_mix_batches_alone_and_answers_as_alone(tmp_path, tiny_model):
    store = make_store(
        tmp_path,
        tiny_model,
        [("alpha", "1.0.0"), ("delta", "1.0.0")],
        {"alpha": "1.0.0", "delta": "1.0.0"},
        dora=frozenset({"delta"}),
    )
    expected = reference(store, ["alpha@1.0.0", "delta@1.0.0"])
    assert len({str(sorted(v.items())) for v in expected.values()}) == 3  # told apart
    names = [("alpha", "alpha@1.0.0"), ("delta", "delta@1.0.0"), (BASE, "base")]
    asks = [("chat", model, prompt) for model, _ in names for prompt in PROMPTS]
    refs = dict(names)
    options = ServeOptions(store=store.url, adapters=["alpha", "delta"], poll_interval=60)
    with in_thread(options) as (url, server):
        engine = server.engine
        (dora_key, why), = engine.solo.items()  # fmt: skip
        assert dora_key.startswith("delta--") and "DoRA" in why
        answers, moved = queued_together(url, server, asks)
    # alpha + the base in one mixed batch, delta's two requests in a batch of their own
    assert moved == {"batches": 2, "requests": 6, "mixed": 1, "sizes": {"2": 1, "4": 1}}
    check(asks, answers, expected, refs)
    # why the fallback exists: PEFT itself refuses per-row adapter names with a DoRA adapter
    fleet = AdapterFleet([pull("delta@1.0.0", store)], keys=["d"])
    with pytest.raises(ValueError, match="DoRA"):
        fleet.model.generate(
            input_ids=torch.tensor([[1, 2, 3]] * 2),
            max_new_tokens=1,
            adapter_names=["d", "__base__"],
        )
