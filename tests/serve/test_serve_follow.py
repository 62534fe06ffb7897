"""How the server follows (or, with --lock, does not follow) the store, and what it does when
the store fails: real servers on 127.0.0.1 in a thread, the real `openai` client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hub_server import running_hub
from servekit import client, get_json, in_thread, make_store, publish, wait_for

from registry.errors import InvalidInput
from registry.serve.server import ServeOptions
from registry.store import open_store
from registry.store.pull import pull

POLL = 0.2


def served(url: str, model: str) -> str:
    r = client(url).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "dog"}], max_tokens=4
    )
    return r.model


def models(url: str) -> dict[str, str | None]:
    return {m.id: getattr(m, "version", None) for m in client(url).models.list().data}


def test_lock_serves_exactly_the_locked_versions_and_follows_nothing(tmp_path, tiny_model):
    store = make_store(
        tmp_path,
        tiny_model,
        [("alpha", "1.0.0"), ("alpha", "1.1.0"), ("beta", "1.0.0")],
        {"alpha": "1.1.0", "beta": "1.0.0"},
    )
    lock = tmp_path / "adapters.lock"
    pull("alpha@1.0.0", store, lock=lock)
    pull("beta", store, lock=lock)
    options = ServeOptions(store=store.url, lock=lock, poll_interval=POLL)
    with in_thread(options) as (url, server):
        assert server.follower is None
        assert models(url) == {
            "alpha": "1.0.0",  # the lock's, though the store's current is 1.1.0
            "alpha@1.0.0": "1.0.0",
            "beta": "1.0.0",
            "beta@1.0.0": "1.0.0",
            "registry/tiny-llama": None,
        }
        store.set_current("alpha", "1.0.0")
        store.set_current("alpha", "1.1.0")
        time.sleep(5 * POLL)
        assert served(url, "alpha") == "alpha@1.0.0"
        health = get_json(url.removesuffix("/v1") + "/health")
        assert health["mode"] == "lock" and health["store"]["following"] is False
    with pytest.raises(InvalidInput, match="drop --adapters"):
        with in_thread(ServeOptions(store=store.url, lock=lock, adapters=["alpha"])):
            pass


def test_a_version_that_fails_verification_is_not_switched_to(tmp_path, tiny_model):
    store = make_store(tmp_path, tiny_model, [("alpha", "1.0.0")], {"alpha": "1.0.0"})
    publish(store, tmp_path, tiny_model, "alpha", "1.1.0")
    commit = next(v.commit for v in store.versions("alpha") if v.version == "1.1.0")
    weights = Path(store.root) / "alpha" / "commits" / commit / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the published bytes
    weights.write_bytes(bytes(data))
    with in_thread(ServeOptions(store=store.url, poll_interval=POLL)) as (url, _):
        store.set_current("alpha", "1.1.0")
        health = wait_for(
            lambda: (h := get_json(url.removesuffix("/v1") + "/health"))["adapter_errors"] and h,
            30,
            "the failed load to show on /health",
        )
        assert health["status"] == "degraded"
        assert "1.1.0" in health["adapter_errors"]["alpha"]
        assert served(url, "alpha") == "alpha@1.0.0"  # still the verified version


def test_a_store_outage_keeps_serving_and_health_says_so(tmp_path, tiny_model, monkeypatch):
    with running_hub(monkeypatch) as hub:
        monkeypatch.setenv("REGISTRY_HUB_RETRIES", "0")  # each poll fails fast
        store = open_store("hf://test-org")
        publish(store, tmp_path, tiny_model, "alpha", "1.0.0")
        store.set_current("alpha", "1.0.0")
        options = ServeOptions(store="hf://test-org", adapters=["alpha"], poll_interval=POLL)
        with in_thread(options) as (url, _):
            health_url = url.removesuffix("/v1") + "/health"
            wait_for(lambda: get_json(health_url)["store"]["last_success"], 30, "a good poll")
            for method in ("GET", "HEAD", "POST"):
                hub.inject(method, ".*", "500", times=None)
            health = wait_for(
                lambda: (h := get_json(health_url))["status"] == "degraded" and h,
                30,
                "the outage to show on /health",
            )
            assert health["store"]["reachable"] is False
            assert health["store"]["consecutive_failures"] >= 1
            assert health["store"]["last_error"]
            for _ in range(3):  # what is loaded keeps answering
                assert served(url, "alpha") == "alpha@1.0.0"
            hub.clear_faults()
            wait_for(lambda: get_json(health_url)["status"] == "ok", 30, "recovery")
