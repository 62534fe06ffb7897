"""`registry serve` end to end: the real `openai` client against the real CLI on 127.0.0.1,
one tiny base, three adapter versions in a local store.

Covered: every served name answers exactly what AdapterFleet.generate answers (chat, text,
streamed and not); /v1/models; OpenAI-shaped 404 / 400 / 413; and, under a bounded concurrent
load, a rollback of the store's current pointer (what `registry sync` does on a revert) is
served within the poll interval with no failed request, while a pinned version and the other
adapter answer as before; a promotion then unloads the version nothing uses any more.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from servekit import PROMPTS, Cli, client, get_json, make_store, publish, reference, wait_for

POLL = 0.5  # seconds, the server's --poll-interval
# Generous on purpose: the point is "one poll (+ a small adapter load)", not a speed record.
SWITCH_SLACK = 15.0


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("serve")
    store = make_store(
        tmp,
        tiny_model,
        [("alpha", "1.0.0"), ("alpha", "1.1.0"), ("beta", "1.0.0")],
        {"alpha": "1.1.0", "beta": "1.0.0"},
    )
    expected = reference(store, ["alpha@1.0.0", "alpha@1.1.0", "beta@1.0.0"])
    # the versions must be told apart by their answers, or the checks below prove nothing
    assert len({json.dumps(v, sort_keys=True) for v in expected.values()}) == len(expected)
    server = Cli(
        [
            "--store", store.url, "--poll-interval", str(POLL),
            "--adapters", "alpha,beta", "--adapters", "alpha@1.1.0",
            "--max-request-bytes", "65536",
        ],
        tmp / "serve.log",
    )  # fmt: skip
    try:
        yield {"store": store, "tmp": tmp, "server": server, "expected": expected}
    finally:
        server.stop()


def chat(c, model: str, prompt: str, **kw):
    return c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=8, **kw
    )


def test_each_name_answers_what_the_library_answers(world):
    c, expected = client(world["server"].url), world["expected"]
    for model, ref in [
        ("alpha", "alpha@1.1.0"),
        ("alpha@1.1.0", "alpha@1.1.0"),
        ("beta", "beta@1.0.0"),
        ("registry/tiny-llama", "base"),
        ("builtin:tiny-llama", "base"),
    ]:
        for prompt in PROMPTS:
            r = chat(c, model, prompt)
            assert r.choices[0].message.content == expected[ref][f"chat:{prompt}"], (model, prompt)
            assert r.model == (ref if ref != "base" else "registry/tiny-llama")
            assert r.usage.completion_tokens <= 8 < r.usage.total_tokens
            t = c.completions.create(model=model, prompt=prompt, max_tokens=8)
            assert t.choices[0].text == expected[ref][f"text:{prompt}"], (model, prompt)
        # streamed: the deltas add up to the same answer, then a finish reason and usage
        stream = chat(c, model, PROMPTS[1], stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == expected[ref][f"chat:{PROMPTS[1]}"]
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] in (
            "stop",
            "length",
        )
        assert chunks[-1].usage.completion_tokens >= 1
        streamed = c.completions.create(model=model, prompt=PROMPTS[0], max_tokens=8, stream=True)
        assert "".join(ch.choices[0].text for ch in streamed) == expected[ref][f"text:{PROMPTS[0]}"]


def models(url: str) -> dict[str, str | None]:
    return {m.id: getattr(m, "version", None) for m in client(url).models.list().data}


def test_models_lists_names_with_their_version_and_each_held_version(world):
    assert models(world["server"].url) == {
        "alpha": "1.1.0",
        "alpha@1.1.0": "1.1.0",
        "beta": "1.0.0",
        "beta@1.0.0": "1.0.0",
        "registry/tiny-llama": None,
    }
    one = client(world["server"].url).models.retrieve("alpha")
    assert one.version == "1.1.0"


def test_errors_are_shaped_as_openai_clients_expect(world):
    c = client(world["server"].url)
    for model in ["gamma", "alpha@9.9.9", "alpha@1.0.0"]:  # 1.0.0 is published, not held
        with pytest.raises(openai.NotFoundError) as err:
            chat(c, model, "dog")
        assert err.value.body["code"] == "model_not_found"
        assert model in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("gamma")
    with pytest.raises(openai.APIStatusError) as err:  # over --max-request-bytes 65536
        chat(c, "alpha", "x" * 100_000)
    assert err.value.status_code == 413
    assert err.value.body["code"] == "request_too_large"
    for bad in [
        {"messages": []},
        {"n": 2},
        {"max_tokens": 0},
        {"max_tokens": 1_000_000},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
    ]:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "dog"}], **bad}
        with pytest.raises(openai.BadRequestError) as err:
            c.chat.completions.create(**body)
        assert err.value.body["type"] == "invalid_request_error", bad
    # not JSON at all: 400 with an OpenAI error body, not a traceback
    request = urllib.request.Request(
        world["server"].url + "/chat/completions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 400
    assert "error" in json.loads(err.value.read())
    assert chat(c, "alpha", "dog").model == "alpha@1.1.0"  # and the server is still fine


def test_rollback_under_load_is_served_within_a_poll_and_nothing_fails(world):
    store, server, expected = world["store"], world["server"], world["expected"]
    switched = threading.Event()
    results: list[dict] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        c = client(server.url)
        after = 0
        for n in range(400):  # bounded; normally ends 6 requests after the switch is seen
            model = ["alpha", "alpha@1.1.0", "beta"][(i + n) % 3]
            start = time.time()
            try:
                r = chat(c, model, PROMPTS[n % 2])
                row = {"model": model, "prompt": PROMPTS[n % 2], "start": start,
                       "served": r.model, "text": r.choices[0].message.content}  # fmt: skip
            except Exception as exc:  # noqa: BLE001  (every failure is counted, none hidden)
                row = {"model": model, "start": start, "error": repr(exc)}
            with lock:
                results.append(row)
            after += switched.is_set()
            if after > 6:
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(results) >= 12, 120, "requests before the rollback")
    t_revert = time.time()
    store.set_current("alpha", "1.0.0")  # exactly what `registry sync` does on a revert
    health = wait_for(
        lambda: (
            (h := get_json(server.root + "/health"))["adapters"]["alpha"]["current"] == "1.0.0"
            and h
        ),
        60,
        "the server to follow the rollback",
    )
    switched.set()
    for t in threads:
        t.join(120)
    served_after = health["adapters"]["alpha"]["since"]
    delay = served_after - t_revert
    print(f"rollback served {delay:.2f} s after the pointer moved (poll {POLL} s); "
          f"{len(results)} requests, batching {health['batching']}")  # fmt: skip

    assert not [r for r in results if "error" in r], [r for r in results if "error" in r][:3]
    assert delay <= POLL + SWITCH_SLACK
    for r in results:
        if r["model"] == "alpha@1.1.0":  # pinned: unaffected
            assert r["served"] == "alpha@1.1.0"
        elif r["model"] == "beta":
            assert r["served"] == "beta@1.0.0"
        elif r["start"] > served_after + 0.05:  # admitted after the switch: the rollback
            assert r["served"] == "alpha@1.0.0", r
        elif r["start"] < t_revert:
            assert r["served"] == "alpha@1.1.0", r
        # each answer is the answer of the version that says it answered
        assert r["text"] == expected[r["served"]][f"chat:{r['prompt']}"], r
    assert any(r["served"] == "alpha@1.0.0" for r in results)
    assert models(server.url)["alpha"] == "1.0.0"
    assert "alpha@1.1.0" in models(server.url)  # pinned: still held


def test_a_promotion_loads_the_new_version_and_unloads_the_unused_one(world):
    store, server, tmp = world["store"], world["server"], world["tmp"]
    from registry.spec.base_model import resolve_base_model

    publish(store, tmp, resolve_base_model("builtin:tiny-llama"), "beta", "1.1.0")
    store.set_current("beta", "1.1.0")
    wait_for(lambda: models(server.url).get("beta") == "1.1.0", 60, "beta 1.1.0 to be served")
    # beta@1.0.0 was current only, not pinned, and no request holds it: unloaded
    wait_for(lambda: "beta@1.0.0" not in models(server.url), 30, "beta@1.0.0 to be unloaded")
    ours = reference(store, ["beta@1.1.0"])["beta@1.1.0"]
    assert chat(client(server.url), "beta", "dog").choices[0].message.content == ours["chat:dog"]
    health = get_json(server.root + "/health")
    assert health["status"] == "ok" and health["store"]["reachable"], health
